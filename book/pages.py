"""The site's Markdown pages, made from the project's own documents.

Nothing is written twice: the start page's course map joins the README's course table (what
each notebook builds, its CPU time) with the learner times in ``INSTRUCTORS.md``; the README
is split at its ``##`` headings into a course page and a library page; ``INSTRUCTORS.md``,
``data/README.md`` and every ``docs/*.md`` become pages of their own. Links are rewritten for
the site: a link to a document that is a page goes to that page (and to the page that holds
a README heading), a link to any other file of the repository goes to GitHub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# README sections (by their ``##`` heading) that make the course page; the rest, after the
# introduction, make the library page.
COURSE_SECTIONS = ("Two commands", "A first look", "The course", "Using a GPU")
LIBRARY_TITLE = "The library: API, pipeline, community models"
COURSE_TITLE = "Getting started"
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")
H2 = re.compile(r"^## (.+)$", re.MULTILINE)


@dataclass
class Page:
    """A page of the site: its file name in the book (``course.md``) and its Markdown."""

    name: str
    text: str


def slug(heading: str) -> str:
    """GitHub's (and MyST's) anchor of a heading: ``"Community models"`` -> ``community-models``."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def sections(markdown: str) -> tuple[str, list[tuple[str, str]]]:
    """Split a document at its ``##`` headings: (text before the first, [(heading, section)])."""
    starts = [m.start() for m in H2.finditer(markdown)]
    if not starts:
        return markdown, []
    parts = [markdown[a:b] for a, b in zip(starts, starts[1:] + [len(markdown)])]
    return markdown[: starts[0]], [(H2.match(p).group(1).strip(), p) for p in parts]


def retitle(markdown: str, title: str) -> str:
    """The document with its first ``#`` heading replaced by ``title`` (or given one)."""
    body, count = re.subn(r"^# .*$", f"# {title}", markdown, count=1, flags=re.MULTILINE)
    return body if count else f"# {title}\n\n{markdown}"


def table(markdown: str, first_header: str, wanted: str) -> list[dict[str, str]]:
    """The rows of the first Markdown table whose header has ``first_header`` and ``wanted``."""
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        cells = _cells(line)
        if cells and cells[0] == first_header and wanted in cells:
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(cells, _cells(row))))
            return rows
    raise ValueError(f"no table with the columns {first_header!r} and {wanted!r} found")


def _cells(line: str) -> list[str]:
    line = line.strip()
    if not line.startswith("|"):
        return []
    return [cell.strip() for cell in line.strip("|").split("|")]


class Links:
    """Rewrites the links of a page from where its document lives in the repository."""

    def __init__(self, repository: str, pages: dict[str, str], anchors: dict[str, str]):
        """``pages``: repository path -> page (``"INSTRUCTORS.md"`` -> ``"instructors.md"``);
        ``anchors``: README anchor -> the page holding it."""
        self.repository = repository.rstrip("/")
        self.pages, self.anchors = pages, anchors

    def rewrite(self, markdown: str, source: str) -> str:
        """``markdown`` from the repository file ``source``, with its links made site links."""
        folder = Path(source).parent

        def one(match: re.Match) -> str:
            text, target = match.groups()
            return f"[{text}]({self.target(target, folder, source)})"

        return LINK.sub(one, markdown)

    def target(self, target: str, folder: Path, source: str) -> str:
        if re.match(r"^[a-z]+:", target):
            return target  # http(s), mailto: already absolute
        path, _, anchor = target.partition("#")
        if not path:  # an anchor in the same document
            if source == "README.md" and anchor in self.anchors:
                return f"{self.anchors[anchor]}#{anchor}"
            return target
        resolved = _normalise(folder / path)
        if resolved == "README.md" and anchor in self.anchors:
            return f"{self.anchors[anchor]}#{anchor}"
        if resolved in self.pages:
            return self.pages[resolved] + (f"#{anchor}" if anchor else "")
        kind = "tree" if not Path(resolved).suffix else "blob"
        return f"{self.repository}/{kind}/main/{resolved}" + (f"#{anchor}" if anchor else "")


def _normalise(path: Path) -> str:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            parts = parts[:-1]
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def project_pages(repo: Path, repository: str, titles: dict[str, str]) -> list[Page]:
    """Every Markdown page of the site, from the documents of the checkout ``repo``.

    ``titles``: notebook file name -> its title, in course order (they make the course map).
    """
    readme = (repo / "README.md").read_text()
    intro, parts = sections(readme)
    course = [text for heading, text in parts if heading in COURSE_SECTIONS]
    library = [text for heading, text in parts if heading not in COURSE_SECTIONS]
    anchors = {}
    for heading, text in parts:
        page = "course.md" if heading in COURSE_SECTIONS else "library.md"
        for sub in re.findall(r"^#{2,4} (.+)$", text, re.MULTILINE):
            anchors[slug(sub)] = page
    documents = {  # repository path -> (page, title)
        "INSTRUCTORS.md": ("instructors.md", None),
        "data/README.md": ("data.md", "Data: what goes in data/"),
    }
    for doc in sorted((repo / "docs").glob("*.md")):
        documents[f"docs/{doc.name}"] = (doc.name, None)
    links = Links(
        repository,
        {path: page for path, (page, _) in documents.items()}
        | {f"notebooks/{name}": f"notebooks/{name}" for name in titles},
        anchors,
    )
    start = course_map(repo, intro, titles)
    for doc in sorted((repo / "docs").glob("*.md")):
        heading = re.search(r"^# (.+)$", doc.read_text(), re.MULTILINE)
        start += f"- [{heading.group(1) if heading else doc.stem}]({doc.name})\n"
    pages = [
        Page("index.md", links.rewrite(start, "README.md")),
        Page("course.md", links.rewrite(f"# {COURSE_TITLE}\n\n" + "".join(course), "README.md")),
        Page("library.md", links.rewrite(f"# {LIBRARY_TITLE}\n\n" + "".join(library), "README.md")),
    ]
    for path, (page, title) in documents.items():
        text = (repo / path).read_text()
        pages.append(Page(page, links.rewrite(retitle(text, title) if title else text, path)))
    return pages


def course_map(repo: Path, intro: str, titles: dict[str, str]) -> str:
    """The start page: the README's introduction, then one row per notebook.

    The row joins the README's course table (builds, exercises, CPU time) with the learner
    time of ``INSTRUCTORS.md``; a notebook missing from either table is an error, so the map
    cannot silently fall behind the course.
    """
    readme_rows = {row["#"]: row for row in table((repo / "README.md").read_text(), "#", "builds")}
    learner = {
        row["#"]: row for row in table((repo / "INSTRUCTORS.md").read_text(), "#", "learner time")
    }
    lines = [
        "| # | notebook | what it builds | exercises | learner time | CPU time |",
        "|---|---|---|---|---|---|",
    ]
    for name, title in titles.items():
        number = name[:2]
        if number not in readme_rows or number not in learner:
            raise ValueError(
                f"notebook {name} has no row in the README's course table or in "
                "INSTRUCTORS.md's learner times: add one to both"
            )
        row = readme_rows[number]
        short = re.sub(r"^\d+\s*·\s*", "", title)  # "00 · Welcome" -> "Welcome"
        lines.append(
            f"| {number} | [{short}](notebooks/{name}) | {row['builds']} | {row['exercises']} "
            f"| {learner[number]['learner time']} | {row['CPU time']} |"
        )
    title = re.search(r"^# (.+)$", intro, re.MULTILINE).group(1)
    body = intro.split("\n", 1)[1] if intro.startswith("# ") else intro
    return "\n".join(
        [
            f"# {title}",
            body.rstrip(),
            "",
            "## The course map",
            "",
            "Every notebook page below shows the notebook as it ran, top to bottom, with its "
            "default parameter cell on a CPU: every figure, table and audio player in place. "
            "The rocket button at the top of a notebook page opens it on Colab or Binder, "
            "the download button gives the notebook itself. Learner times are estimates "
            "for reading and answering the exercises; CPU times are measured on two cores.",
            "",
            *lines,
            "",
            "## More",
            "",
            f"- [{COURSE_TITLE}](course.md): the two set-up commands, where to run the course, "
            "and a GPU",
            f"- [{LIBRARY_TITLE}](library.md)",
            "- [Teaching with bsr](instructors.md): lab plans, a semester plan, the rubric",
            "- [Data](data.md): the practice set, real excerpts, MUSDB18",
            "",
        ]
    )
