"""The site as a Jupyter Book: its sources staged in one folder, then built to HTML.

Jupyter Book 1 (Sphinx, myst-nb and the book theme) builds the site; it runs on Python
alone and offline. It never executes a notebook here (``execute_notebooks: off``): the
notebooks come executed, either by ``python -m book`` or by the test run. The sources are
staged as

    SRC/_config.yml, _toc.yml         written from REPOSITORY (the one address in pyproject)
    SRC/index.md, course.md, ...      book.pages
    SRC/notebooks/NN_name.ipynb       book.notebook.for_the_web(executed notebook)

so that a notebook's path in the book is its path in the repository, which is what the
theme's Colab and Binder buttons are built from.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

from book.notebook import for_the_web
from book.pages import project_pages

BRANCH = "main"
BINDER = "https://mybinder.org"
COLAB = "https://colab.research.google.com"
MATHJAX = "tex-chtml.js"  # what sphinx-mathjax-offline points the pages at


def repository_url(repo: Path) -> str:
    """The ``Repository`` address of ``[project.urls]`` in ``repo/pyproject.toml``."""
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # Python 3.10: pip's vendored copy of the same parser
        from pip._vendor import tomli as tomllib
    with open(repo / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]["urls"]["Repository"]


def title_of(nb) -> str:
    """A notebook's title: its first ``#`` heading without the number (``00 · Welcome``)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            return cell.source.splitlines()[0][2:].strip()
    raise ValueError("a course notebook has no '# title' in its first markdown cell")


def config(repository: str, jupyterhub: str | None = None) -> dict:
    """``_config.yml``: the book's title, launch buttons and Sphinx settings."""
    launch = {"notebook_interface": "jupyterlab", "binderhub_url": BINDER, "colab_url": COLAB}
    if jupyterhub:
        launch["jupyterhub_url"] = jupyterhub
    return {
        "title": "bsr: the BS-RoFormer course",
        "author": "the bsr contributors",
        "copyright": "2026",
        "only_build_toc_files": True,
        "execute": {"execute_notebooks": "off"},
        "repository": {"url": repository, "path_to_book": "", "branch": BRANCH},
        "launch_buttons": launch,
        "html": {
            "use_repository_button": True,
            "use_issues_button": True,
            "use_edit_page_button": False,  # the pages are made from the sources, not stored
            "home_page_in_navbar": False,  # the title above the menu is the way home
        },
        "parse": {"myst_enable_extensions": ["dollarmath", "amsmath", "colon_fence"]},
        "sphinx": {
            # MathJax from the build, not a CDN: the site reads the same offline.
            "extra_extensions": ["sphinx-mathjax-offline"],
            "config": {
                "myst_heading_anchors": 4,
                "nb_ipywidgets_js": {},  # the widgets are still images (book.notebook)
                "nb_render_markdown_format": "myst",  # Markdown outputs hold tables
                "nb_merge_streams": True,  # one box per cell's printout, not one per flush
                "html_show_sourcelink": False,
                "suppress_warnings": ["myst.header"],
            },
        },
    }


def toc(notebooks: list[str], pages: list[str]) -> dict:
    """``_toc.yml``: the start page, the course page, the notebooks, then the reference pages."""
    reference = [Path(p).stem for p in pages if p not in ("index.md", "course.md")]
    course = [f"notebooks/{Path(n).stem}" for n in notebooks]
    return {
        "format": "jb-book",
        "root": "index",
        "parts": [
            {"caption": "Start", "chapters": [{"file": "course"}]},
            {"caption": "The course", "chapters": [{"file": file} for file in course]},
            {"caption": "Reference", "chapters": [{"file": file} for file in reference]},
        ],
    }


def stage(repo: Path, executed: Path, src: Path, jupyterhub: str | None = None) -> list[str]:
    """Write the book's sources into ``src`` from ``executed/*.ipynb``; return the notebooks."""
    names = sorted(p.name for p in (repo / "notebooks").glob("*.ipynb"))
    missing = [name for name in names if not (executed / name).exists()]
    if missing:
        raise FileNotFoundError(f"{executed} has no executed {', '.join(missing)}")
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    titles = {}
    for name in names:
        nb = for_the_web(nbformat.read(executed / name, as_version=4))
        titles[name] = title_of(nb)
        nbformat.write(nb, src / "notebooks" / name)
    repository = repository_url(repo)
    pages = project_pages(repo, repository, titles)
    for page in pages:
        (src / page.name).write_text(page.text)
    settings = config(repository, jupyterhub)
    (src / "_config.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    contents = toc(names, [page.name for page in pages])
    (src / "_toc.yml").write_text(yaml.safe_dump(contents, sort_keys=False))
    return names


def build(src: Path, out: Path, repo: Path) -> Path:
    """Run Jupyter Book on ``src`` into ``out``; return the folder of the HTML site.

    The download button of a notebook page then gives the course's own notebook (no outputs,
    as committed) rather than the executed page source.
    """
    # Jupyter Book 1 has no ``python -m`` entry; its console script is this call.
    jupyter_book = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]
    command = [*jupyter_book, "build", str(src), "--path-output", str(out), "--all", "--keep-going"]
    done = subprocess.run(command, capture_output=True, text=True)
    html = out / "_build" / "html"
    if done.returncode != 0 or not (html / "index.html").exists():
        raise RuntimeError("jupyter-book build failed:\n" + (done.stdout + done.stderr)[-3000:])
    for notebook in (html / "_sources" / "notebooks").glob("*.ipynb"):
        shutil.copyfile(repo / "notebooks" / notebook.name, notebook)
    # The pages load MathJax's tex-chtml.js (which fetches its fonts and extensions from the
    # folders beside it); the other combined builds are never loaded: 15 MB saved.
    for bundle in (html / "_static" / "mathjax").glob("*.js"):
        if bundle.name != MATHJAX:
            bundle.unlink()
    (out / "build.log").write_text(done.stdout + done.stderr)
    return html


def size_mb(folder: Path) -> float:
    """The total size of the files under ``folder``, in MB (10**6 bytes)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def warnings(log: str) -> list[str]:
    """The Sphinx warnings of a build log (one line each)."""
    return [line for line in log.splitlines() if "WARNING" in line]
