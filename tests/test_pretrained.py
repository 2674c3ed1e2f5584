"""The pretrained registry and downloader, against a web server on this machine only.

Every download here goes to ``http://127.0.0.1:PORT``, a ThreadingHTTPServer started by
the ``server`` fixture; nothing reaches the internet. The shipped registry is only parsed.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
import time
import urllib.parse
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from conftest import community_config

from bsr.checkpoint import export_community, save_model
from bsr.community import load_zfturbo, zfturbo_config
from bsr.config import load_config
from bsr.errors import BsrError
from bsr.hub import load_model as hub_load_model
from bsr.model import BSRoformer
from bsr.pretrained import (
    UnverifiedDownload,
    cache_dir,
    cached_path,
    download,
    find_entry,
    list_entries,
    load_pretrained,
    load_registry,
)

# A community-layout model small enough to build in milliseconds.
COMMUNITY = community_config(dim=32, bands="paper")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Server:
    """A loopback web server for one folder; counts the requests it answers."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the name http.server calls)
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):  # keep pytest's output clean
                pass

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()  # polls every 50 ms, so stop() is quick
        self.running = True

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{urllib.parse.quote(name)}"

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)
            self.running = False


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    srv = Server(root)
    yield srv
    srv.stop()


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def tiny_bsr(server) -> Path:
    """A tiny bsr checkpoint, served as /tiny.pt."""
    path = server.root / "tiny.pt"
    save_model(BSRoformer(load_config("tiny").model), path)
    return path


def write_registry(tmp_path: Path, entries: list[dict]) -> Path:
    defaults = {
        "description": "a test model",
        "licence": "MIT",
        "source": "https://example.org/models",
        "format": "bsr",
        "config": None,
    }
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump([{**defaults, **e} for e in entries], sort_keys=False))
    return path


def closed_port() -> int:
    """A loopback port nobody listens on (bound, read, closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def separates(model: BSRoformer) -> None:
    audio = torch.randn(1, model.channels, 4096)
    with torch.no_grad():
        out = model(audio)
    assert out.shape == (1, len(model.stems), model.channels, 4096)
    assert torch.isfinite(out).all()


# ---------------------------------------------------------------------------- happy paths


def test_download_caches_and_then_needs_no_network(server, tiny_bsr, cache, tmp_path):
    registry = write_registry(
        tmp_path, [{"name": "tiny", "url": server.url("tiny.pt"), "sha256": sha256(tiny_bsr)}]
    )
    path = download("tiny", cache=cache, registry=registry, progress=False)
    assert path == cache / "tiny" / "tiny.pt"
    assert path.read_bytes() == tiny_bsr.read_bytes()
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    assert len(server.requests) == 1

    assert download("tiny", cache=cache, registry=registry, progress=False) == path
    assert len(server.requests) == 1  # reused: the server was not asked again
    server.stop()
    assert download("tiny", cache=cache, registry=registry, timeout=1, progress=False) == path


def test_load_pretrained_bsr_checkpoint_runs(server, tiny_bsr, cache, tmp_path):
    registry = write_registry(
        tmp_path,
        [{"name": "tiny", "url": server.url("tiny.pt"), "sha256": sha256(tiny_bsr)}],
    )
    model = load_pretrained("tiny", cache=cache, registry=registry, progress=False)
    assert not model.training
    assert model.config == load_config("tiny").model
    separates(model)


def test_load_pretrained_community_inline_config(server, cache, tmp_path):
    original = BSRoformer(COMMUNITY).eval()
    path = server.root / "community model.ckpt"  # a space, to exercise URL quoting
    export_community(original, path)
    registry = write_registry(
        tmp_path,
        [
            {
                "name": "community",
                "url": server.url(path.name),
                "sha256": sha256(path),
                "format": "community",
                "config": zfturbo_config(COMMUNITY),
            }
        ],
    )
    model = load_pretrained("community", cache=cache, registry=registry, progress=False)
    audio = torch.randn(1, 2, 4096)
    with torch.no_grad():
        torch.testing.assert_close(model(audio), original(audio))
    # The inline config's windows come along: 8 s (in whole hops) every half of it.
    window = zfturbo_config(COMMUNITY)["audio"]["chunk_size"]
    assert model.separation_defaults == {"window": window, "hop": window // 2}


def test_load_pretrained_mel_band_model(server, cache, tmp_path):
    config = community_config(
        bands="mel", num_mel_bands=16, mask_norm="none", output_norm=True, zero_dc=True
    )
    original = BSRoformer(config).eval()
    path = server.root / "MelBandRoformer.ckpt"
    export_community(original, path)
    entry = {
        "name": "mel",
        "url": server.url(path.name),
        "sha256": sha256(path),
        "format": "community",
        "config": zfturbo_config(config),
    }
    model = load_pretrained("mel", cache=cache, registry=write_registry(tmp_path, [entry]),
                            progress=False)  # fmt: skip
    assert (model.config.bands, model.config.zero_dc) == ("mel", True)
    audio = torch.randn(1, 2, 4096)
    with torch.no_grad():
        torch.testing.assert_close(model(audio), original(audio))


def test_load_pretrained_community_config_by_url(server, cache, tmp_path):
    export_community(BSRoformer(COMMUNITY), server.root / "m.ckpt", server.root / "m.yaml")
    registry = write_registry(
        tmp_path,
        [
            {
                "name": "remote-config",
                "url": server.url("m.ckpt"),
                "sha256": sha256(server.root / "m.ckpt"),
                "format": "community",
                "config": {"url": server.url("m.yaml"), "sha256": sha256(server.root / "m.yaml")},
            }
        ],
    )
    model = load_pretrained("remote-config", cache=cache, registry=registry, progress=False)
    assert (cache / "remote-config" / "m.yaml").is_file()
    separates(model)


# ---------------------------------------------------------------------------- failures


def test_wrong_checksum_fails_and_leaves_nothing(server, tiny_bsr, cache, tmp_path):
    registry = write_registry(
        tmp_path, [{"name": "tiny", "url": server.url("tiny.pt"), "sha256": "0" * 64}]
    )
    with pytest.raises(BsrError, match="checksum mismatch.*corrupt or the file changed") as e:
        download("tiny", cache=cache, registry=registry, progress=False)
    assert "\n" not in str(e.value)
    assert list((cache / "tiny").iterdir()) == []


def test_stale_cached_file_is_replaced(server, tiny_bsr, cache, tmp_path):
    registry = write_registry(
        tmp_path, [{"name": "tiny", "url": server.url("tiny.pt"), "sha256": sha256(tiny_bsr)}]
    )
    stale = cache / "tiny" / "tiny.pt"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a download")
    path = download("tiny", cache=cache, registry=registry, progress=False)
    assert path.read_bytes() == tiny_bsr.read_bytes()


def test_http_404_is_one_line(server, cache, tmp_path):
    registry = write_registry(
        tmp_path, [{"name": "gone", "url": server.url("missing.pt"), "sha256": "0" * 64}]
    )
    with pytest.raises(BsrError, match="HTTP 404") as e:
        download("gone", cache=cache, registry=registry, progress=False)
    assert "\n" not in str(e.value)
    assert list((cache / "gone").iterdir()) == []


def test_unreachable_server_says_network_and_does_not_hang(cache, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/model.pt"
    registry = write_registry(tmp_path, [{"name": "offline", "url": url, "sha256": "0" * 64}])
    start = time.monotonic()
    with pytest.raises(BsrError, match="needs network access") as e:
        download("offline", cache=cache, registry=registry, timeout=2, progress=False)
    assert time.monotonic() - start < 10
    message = str(e.value)
    assert "\n" not in message
    assert url in message and str(cache / "offline" / "model.pt") in message


class CutShort(http.server.BaseHTTPRequestHandler):
    """Promises 1000 bytes, sends 100, hangs up: a dropped connection."""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 100)
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_cut_connection_is_a_network_error(cache, tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CutShort)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/model.pt"
        registry = write_registry(tmp_path, [{"name": "cut", "url": url, "sha256": None}])
        with pytest.raises(BsrError, match=r"needs network access \(the connection closed"):
            download("cut", cache=cache, registry=registry, timeout=2, progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert list((cache / "cut").iterdir()) == []


def test_silent_server_times_out(cache, tmp_path):
    with socket.socket() as silent:  # listens, so connecting works, but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/model.pt"
        registry = write_registry(tmp_path, [{"name": "slow", "url": url, "sha256": None}])
        start = time.monotonic()
        with pytest.raises(BsrError, match="needs network access"):
            download("slow", cache=cache, registry=registry, timeout=0.5, progress=False)
        assert time.monotonic() - start < 5


def test_unknown_name_lists_the_available_ones(tmp_path):
    registry = write_registry(
        tmp_path,
        [
            {"name": "alpha", "url": "https://example.org/a.pt", "sha256": None},
            {"name": "beta", "url": "https://example.org/b.pt", "sha256": None},
        ],
    )
    with pytest.raises(BsrError, match="no pretrained model 'gamma': choose one of alpha, beta"):
        download("gamma", registry=registry)


# ---------------------------------------------------------------------------- no checksum


def test_no_published_checksum_warns_and_records(server, tiny_bsr, cache, tmp_path):
    registry = write_registry(
        tmp_path, [{"name": "tiny", "url": server.url("tiny.pt"), "sha256": None}]
    )
    with pytest.warns(UnverifiedDownload, match="no published checksum: verify the source"):
        path = download("tiny", cache=cache, registry=registry, progress=False)
    record = path.with_name("tiny.pt.sha256").read_text()
    assert record == f"{sha256(tiny_bsr)}  tiny.pt\n"  # sha256sum -c format

    server.stop()  # reuse: still unverified, so still a warning, but no network
    with pytest.warns(UnverifiedDownload):
        assert download("tiny", cache=cache, registry=registry, progress=False) == path


def test_require_checksum_refuses_unverified_entries(server, tiny_bsr, cache, tmp_path):
    registry = write_registry(
        tmp_path, [{"name": "tiny", "url": server.url("tiny.pt"), "sha256": None}]
    )
    with pytest.raises(BsrError, match="no published sha256.*--require-checksum"):
        download("tiny", cache=cache, registry=registry, require_checksum=True)
    assert server.requests == []


def test_require_checksum_accepts_verified_entries(server, tiny_bsr, cache, tmp_path):
    registry = write_registry(
        tmp_path, [{"name": "tiny", "url": server.url("tiny.pt"), "sha256": sha256(tiny_bsr)}]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedDownload)
        download("tiny", cache=cache, registry=registry, require_checksum=True, progress=False)


# ---------------------------------------------------------------------------- the registry


def test_shipped_registry_is_complete():
    entries = load_registry()
    assert entries, "the shipped registry is empty"
    for entry in entries:
        assert entry.url.startswith("https://"), entry.name
        assert entry.source.startswith("https://"), entry.name
        for field in ("name", "description", "licence", "filename"):
            assert getattr(entry, field), (entry.name, field)
        assert entry.format in ("bsr", "community")
        assert entry.config is not None, entry.name
        assert entry.sha256 is None or len(entry.sha256) == 64


def test_shipped_community_entries_describe_their_networks():
    """The numbers transcribed from ZFTurbo's configs, as bsr reads them."""
    facts = {  # name: (model type, dim, depth, hop, mask depth (bsr's count), window, hop)
        "viperx-vocals-ep317": ("bs_roformer", 512, 12, 441, 2, 352800, 176400),
        "viperx-other-ep937": ("bs_roformer", 384, 12, 512, 2, 131584, 65792),
        "kimberleyjensen-mel-vocals": ("mel_band_roformer", 384, 6, 441, 3, 352800, 176400),
        "viperx-mel-vocals-ep3005": ("mel_band_roformer", 384, 12, 441, 3, 352800, 176400),
    }
    inline = {e.name: e for e in load_registry() if isinstance(e.config, dict)}
    assert sorted(inline) == sorted(facts)
    for name, (kind, dim, depth, hop, mask, window, step) in facts.items():
        found = load_zfturbo(inline[name].config)
        config = found.model
        assert found.model_type == kind, name
        assert (config.dim, config.depth, config.hop_length) == (dim, depth, hop), name
        assert config.mask_estimator_depth == mask, name
        assert found.separation == {"window": window, "hop": step}, name
        assert config.zero_dc and config.channels == 2, name  # ZFTurbo's default, stereo
    kj = find_entry("kimberleyjensen-mel-vocals")
    assert kj.url == (
        "https://huggingface.co/KimberleyJSN/melbandroformer/resolve/main/MelBandRoformer.ckpt"
    )
    assert kj.filename == "MelBandRoformer.ckpt" and kj.sha256 is None


def test_shipped_unverified_entries_are_refused_with_require_checksum():
    for entry in load_registry():
        if entry.sha256 is None:
            with pytest.raises(BsrError, match="no published sha256"):
                download(entry.name, require_checksum=True)  # refuses before any network


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sha256": "abc"}, "sha256 must be 64 hex digits or null"),
        ({"url": "ftp://example.org/a.pt"}, "url must be an http"),
        ({"url": "https://example.org/..%2F..%2Fbashrc"}, "plain file name"),
        ({"url": "https://example.org/"}, "plain file name"),
        ({"format": "onnx"}, "format must be one of bsr, community"),
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"name": "Has Spaces"}, "must be lower-case letters"),
        ({"size": -1}, "size must be a positive number"),
        ({"config": "no-such-preset"}, "is not a preset"),
        ({"format": "community", "config": None}, "needs a config"),
        ({"config": {"url": "https://example.org/c.yaml"}}, "exactly 'url' and 'sha256'"),
        ({"config": {"model": {"dim": 8}}}, "no model.depth"),
        ({"config": {"url": "https://e.org/x.pt", "sha256": None}}, "the same file name"),
    ],
)
def test_registry_mistakes_are_one_line(tmp_path, change, message):
    entry = {"name": "x", "url": "https://example.org/x.pt", "sha256": None, **change}
    with pytest.raises(BsrError, match=message) as e:
        load_registry(write_registry(tmp_path, [entry]))
    assert "\n" not in str(e.value) and "fix the registry" in str(e.value)


def test_registry_missing_key_and_duplicates(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("- name: x\n  url: https://example.org/x.pt\n")
    with pytest.raises(BsrError, match="missing 'description'"):
        load_registry(path)
    twice = [{"name": "x", "url": "https://example.org/x.pt", "sha256": None}] * 2
    with pytest.raises(BsrError, match="lists 'x' twice"):
        load_registry(write_registry(tmp_path, twice))
    with pytest.raises(BsrError, match="not found"):
        load_registry(tmp_path / "absent.yaml")


def test_cache_dir_follows_bsr_cache_else_the_course_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("BSR_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("BSR_HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("BSR_CACHE")
    assert cache_dir() == tmp_path / "home" / "downloads"
    monkeypatch.delenv("BSR_HOME")
    assert cache_dir() == Path.home() / "bsr-course" / "downloads"


def test_list_entries_shows_names_and_cache_state(server, tiny_bsr, cache, tmp_path):
    registry = write_registry(
        tmp_path, [{"name": "tiny", "url": server.url("tiny.pt"), "sha256": sha256(tiny_bsr)}]
    )
    assert "tiny  (bsr, sha256 published, not downloaded)" in list_entries(registry, cache)
    download("tiny", cache=cache, registry=registry, progress=False)
    assert "cached)" in list_entries(registry, cache)
    text = list_entries()  # the shipped registry
    for entry in load_registry():
        assert entry.name in text
    assert "kimberleyjensen-mel-vocals  (community mel_band_roformer, no published" in text
    assert "viperx-vocals-ep317  (community bs_roformer, no published checksum" in text
    assert cached_path(find_entry("tiny", registry), cache).is_file()


def test_bsr_registry_names_another_registry(server, tiny_bsr, cache, tmp_path, monkeypatch):
    registry = write_registry(
        tmp_path,
        [{"name": "class-model", "url": server.url("tiny.pt"), "sha256": sha256(tiny_bsr)}],
    )
    monkeypatch.setenv("BSR_REGISTRY", str(registry))
    assert [entry.name for entry in load_registry()] == ["class-model"]
    monkeypatch.setenv("BSR_CACHE", str(cache))
    separates(hub_load_model("class-model"))  # bsr.load_model finds it there too
    monkeypatch.delenv("BSR_REGISTRY")
    assert "class-model" not in [entry.name for entry in load_registry()]
