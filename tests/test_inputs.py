"""Moving inputs through the real graph: `stable` from a signed local gentoo.git, the seed from a
loopback mirror with a signed listing and DIGESTS (real gpg), and the pins they leave."""
import hashlib

import pytest

from gentoo_zfs_livecd.rehearsal import emulator
from gentoo_zfs_livecd.release import digestfile
from tests.support.buildgraph import Project
from tests.support.gitupstream import Upstream
from tests.support.gpgtestkeys import Keys

EVERY_STAGE = ["stage1", "stage2", "stage3", "installcd-stage1", "iso"]


@pytest.fixture
def upstream(tmp_path):
    made = Upstream(tmp_path / "git")
    for name, text in emulator.EBUILDS.items():
        (made.work / name).parent.mkdir(parents=True, exist_ok=True)
        (made.work / name).write_text(text)
    made.git("add", "-A")
    made.commit()
    yield made
    made.close()


def test_stable_is_pinned_and_followed_only_on_refresh(upstream, tmp_path):
    # `always`: these commits change no file, which the default (`relevant`) would build nothing for.
    project = Project(tmp_path, snapshot={"treeish": "stable", "repo_url": upstream.url, "rebuild": "always",
                                          "keyring": str(upstream.keyring), "fingerprint": upstream.primary})
    assert project.build() == ["snapshot", *EVERY_STAGE]
    pin = project.build_dir / "pins" / "snapshot.json"
    first = pin.read_text(), pin.stat().st_mtime_ns
    assert upstream.git("rev-parse", "stable") in first[0]

    assert project.build("refresh=1") == []
    assert (pin.read_text(), pin.stat().st_mtime_ns) == first

    upstream.commit(date="2030-03-01T12:00:00Z")  # after the first commit, made now: stable moves forward
    assert project.build() == []  # without refresh the pin stands
    assert project.build("refresh=1") == ["snapshot", *EVERY_STAGE]
    assert "20300301T120000Z" in pin.read_text()

    upstream.commit(sign=None)
    before = pin.read_text()
    failed = project.doit("refresh=1")
    assert failed.returncode != 0
    assert "ERROR: snapshot:" in failed.stdout and "Traceback" not in failed.stdout + failed.stderr
    assert pin.read_text() == before
    assert project.calls() == []


@pytest.fixture
def keys(tmp_path_factory):
    made = Keys(tmp_path_factory.mktemp("keys"))
    yield made
    made.close()


def serve_seed(httpserver, keys, data, stamp, body=None):
    """A signed listing and DIGESTS for `data`; the tarball URL serves `body` (default: `data`)."""
    name = f"stage3-amd64-openrc-{stamp}.tar.xz"
    base = "/releases/amd64/autobuilds"
    listing = f"# Latest as of Sun, 17 Mar 2024 17:30:00 +0000\n# ts=1710696600\n{stamp}/{name} {len(data)}\n"
    digests = digestfile.format([(name, {"blake2b": hashlib.blake2b(data).hexdigest(),
                                         "sha512": hashlib.sha512(data).hexdigest()})])
    httpserver.clear()
    httpserver.expect_request(f"{base}/latest-stage3-amd64-openrc.txt").respond_with_data(keys.sign(listing))
    httpserver.expect_request(f"{base}/{stamp}/{name}").respond_with_data(data if body is None else body)
    httpserver.expect_request(f"{base}/{stamp}/{name}.DIGESTS").respond_with_data(keys.sign(digests))
    return name


def test_mirror_seed_is_verified_pinned_and_not_downloaded_again(httpserver, keys, tmp_path):
    project = Project(tmp_path, seed={"file": None, "mirrors": [httpserver.url_for("/")],
                                      "keyring": str(keys.keyring), "fingerprint": keys.primary})
    data = emulator.make_seed(tmp_path / "upstream-seed.tar.xz").read_bytes()
    name = serve_seed(httpserver, keys, data, "20260110T000000Z")
    assert project.build() == ["snapshot", *EVERY_STAGE]
    seed = project.store / "builds" / "23.0-zfs" / "stage3-amd64-openrc-seed.tar.xz"
    assert seed.read_bytes() == data
    assert name in (project.build_dir / "pins" / "seed.json").read_text()

    httpserver.clear_log()
    assert project.build("refresh=1") == []
    assert [request.path for request, _ in httpserver.log] == [
        "/releases/amd64/autobuilds/latest-stage3-amd64-openrc.txt"]

    newer = data + b"\0" * 512  # tar readers stop at the end marker
    serve_seed(httpserver, keys, newer, "20260117T000000Z")
    assert project.build("refresh=1") == EVERY_STAGE
    assert seed.read_bytes() == newer

    serve_seed(httpserver, keys, newer, "20260124T000000Z", body=b"X" + newer[1:])  # one byte altered
    failed = project.doit("refresh=1")
    assert failed.returncode != 0
    assert "ERROR: seed:" in failed.stdout
    assert seed.read_bytes() == newer
    assert "20260117T000000Z" in (project.build_dir / "pins" / "seed.json").read_text()
    assert project.calls() == []
