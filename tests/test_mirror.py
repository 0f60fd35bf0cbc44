"""Seed downloads from a loopback mirror, with real gpg signatures and real network faults."""
import hashlib
import io
import os
import socket
from pathlib import Path

import pytest
from werkzeug import Response

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.inputs import mirror
from gentoo_zfs_livecd.release import digestfile
from tests.support.gpgtestkeys import Keys

TS = "20240317T170433Z"
NAME = f"stage3-amd64-openrc-{TS}.tar.xz"
AUTOBUILDS = "/releases/amd64/autobuilds"
TARBALL_PATH = f"{AUTOBUILDS}/{TS}/{NAME}"
LISTING_PATH = f"{AUTOBUILDS}/latest-stage3-amd64-openrc.txt"
DATA = os.urandom(3 * 1024 * 1024 + 123)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    made = Keys(tmp_path_factory.mktemp("keys"))
    yield made
    made.close()


def listing_text(size: int = len(DATA), path: str = f"{TS}/{NAME}") -> str:
    return f"# Latest as of Sun, 17 Mar 2024 17:30:00 +0000\n# ts=1710696600\n{path} {size}\n"


def digests_text(data: bytes = DATA, name: str = NAME) -> str:
    digests = {"blake2b": hashlib.blake2b(data).hexdigest(), "sha512": hashlib.sha512(data).hexdigest()}
    return digestfile.format([(name, digests), (f"{name}.CONTENTS.gz", digests)])


def serve_bytes(data: bytes, drop_first_at=None, honour_range=True):
    """A handler serving `data` with Range support; the first answer may stop at byte
    `drop_first_at` and close the connection although Content-Length promised more."""
    state = {"dropped": drop_first_at is None}

    def handler(request):
        start = 0
        if honour_range and request.headers.get("Range"):
            start = int(request.headers["Range"].removeprefix("bytes=").split("-")[0])
        body = data[start:]
        headers = {"Content-Length": str(len(body))}
        status = 200
        if start:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if not state["dropped"]:
            state["dropped"] = True
            cut = drop_first_at

            def truncated():
                yield body[:cut]

            return Response(truncated(), status=status, headers=headers, direct_passthrough=True)
        return Response(body, status=status, headers=headers)

    return handler


class Site:
    """A mirror on a pytest-httpserver, publishing one signed stage3."""

    def __init__(self, server, keys):
        self.server, self.keys = server, keys
        self.url = server.url_for("/").rstrip("/")

    def publish(self, listing=None, digests=None, tarball=None):
        keys = self.keys
        listing = listing if listing is not None else keys.sign(listing_text())
        digests = digests if digests is not None else keys.sign(digests_text())
        self.server.expect_request(LISTING_PATH).respond_with_data(listing)
        self.server.expect_request(TARBALL_PATH + ".DIGESTS").respond_with_data(digests)
        self.server.expect_request(TARBALL_PATH).respond_with_handler(tarball or serve_bytes(DATA))

    def requests_for(self, path):
        return [request for request, _ in self.server.log if request.path == path]


@pytest.fixture
def site(httpserver, keys):
    return Site(httpserver, keys)


class Placement:
    """A seed directory with a previous seed in place, as a caller keeps it."""

    def __init__(self, root: Path):
        self.work = root / "work"
        self.dest = root / "builds" / "23.0-default" / "stage3-amd64-openrc-latest.tar.xz"
        self.keep_dir = root / "seeds"
        old = root / "old.verified"
        old.write_bytes(b"previous seed")
        mirror.place_seed(old, self.dest, self.keep_dir, keep=2, name="stage3-amd64-openrc-20240310T000000Z.tar.xz")

    def update(self, keys, mirrors, have=None, **kwargs):
        result = mirror.fetch_latest_seed(mirrors, "amd64", "openrc", keys.keyring, keys.primary, self.work,
                                          have=have, session=mirror.make_session(retries=3, backoff=0.01),
                                          progress_stream=io.StringIO(), **kwargs)
        if result.path is not None:
            mirror.place_seed(result.path, self.dest, self.keep_dir, keep=2)
        return result

    def assert_untouched(self):
        assert self.dest.read_bytes() == b"previous seed"
        assert sorted(p.name for p in self.keep_dir.iterdir()) == ["stage3-amd64-openrc-20240310T000000Z.tar.xz"]
        assert not list(self.work.glob("*.verified")) if self.work.exists() else True


@pytest.fixture
def placement(tmp_path):
    return Placement(tmp_path)


def expect_failure(placement, keys, mirrors, *fragments):
    with pytest.raises(UserError) as caught:
        placement.update(keys, mirrors)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    placement.assert_untouched()
    return message


def test_download_verifies_and_places_seed(site, keys, placement):
    site.publish()
    result = placement.update(keys, [site.url])
    assert (result.name, result.size, result.sha512) == (NAME, len(DATA), hashlib.sha512(DATA).hexdigest())
    assert placement.dest.read_bytes() == DATA
    assert placement.dest.resolve() == (placement.keep_dir / NAME).resolve()
    assert not list(placement.work.iterdir())


def test_http_500_twice_is_retried(site, keys, placement):
    site.server.expect_oneshot_request(TARBALL_PATH).respond_with_data("busy", status=500)
    site.server.expect_oneshot_request(TARBALL_PATH).respond_with_data("busy", status=500)
    site.publish()
    placement.update(keys, [site.url])
    assert placement.dest.read_bytes() == DATA
    assert len(site.requests_for(TARBALL_PATH)) == 3


def test_http_404(site, keys, placement):
    site.server.expect_request(TARBALL_PATH).respond_with_data("gone", status=404)
    site.publish()
    expect_failure(placement, keys, [site.url], site.url + TARBALL_PATH, "HTTP 404")


def test_dropped_connection_resumes_with_range(site, keys, placement):
    cut = 1024 * 1024 + 7
    site.publish(tarball=serve_bytes(DATA, drop_first_at=cut))
    placement.update(keys, [site.url])
    assert placement.dest.read_bytes() == DATA
    tarball_requests = site.requests_for(TARBALL_PATH)
    assert len(tarball_requests) == 2
    assert "Range" not in tarball_requests[0].headers
    assert tarball_requests[1].headers["Range"] == f"bytes={cut}-"


def test_server_ignoring_range_is_read_again(site, keys, placement):
    site.publish(tarball=serve_bytes(DATA, drop_first_at=1000, honour_range=False))
    placement.update(keys, [site.url])
    assert placement.dest.read_bytes() == DATA
    assert site.requests_for(TARBALL_PATH)[1].headers["Range"] == "bytes=1000-"


def test_part_file_of_an_earlier_run_is_resumed(site, keys, placement):
    placement.work.mkdir()
    (placement.work / f"{NAME}.part").write_bytes(DATA[:5000])
    site.publish()
    placement.update(keys, [site.url])
    assert placement.dest.read_bytes() == DATA
    assert site.requests_for(TARBALL_PATH)[0].headers["Range"] == "bytes=5000-"


def test_body_shorter_than_listed(site, keys, placement):
    site.publish(listing=keys.sign(listing_text(size=len(DATA) + 100)))
    expect_failure(placement, keys, [site.url], site.url + TARBALL_PATH, f"signed listing says {len(DATA) + 100}")


def test_tarball_altered_by_one_byte(site, keys, placement):
    altered = bytearray(DATA)
    altered[len(DATA) // 2] ^= 1
    site.publish(tarball=serve_bytes(bytes(altered)))
    expect_failure(placement, keys, [site.url], NAME, "SHA512 does not match", TARBALL_PATH + ".DIGESTS")
    assert not list(placement.work.glob("*.part"))


def test_listing_altered_after_signing(site, keys, placement):
    signed = keys.sign(listing_text())
    site.publish(listing=signed.replace(f" {len(DATA)}", f" {len(DATA) + 1}"))
    expect_failure(placement, keys, [site.url], site.url + LISTING_PATH, "signature is BAD")


def test_listing_signed_by_another_key(site, keys, placement):
    site.publish(listing=keys.sign_other(listing_text()))
    expect_failure(placement, keys, [site.url], site.url + LISTING_PATH, "not in the keyring")


def test_unsigned_listing(site, keys, placement):
    site.publish(listing=listing_text())
    expect_failure(placement, keys, [site.url], site.url + LISTING_PATH, "not signed")


def test_digests_without_sha512(site, keys, placement):
    blake_only = f"# BLAKE2B HASH\n{hashlib.blake2b(DATA).hexdigest()}  {NAME}\n"
    site.publish(digests=keys.sign(blake_only))
    expect_failure(placement, keys, [site.url], site.url + TARBALL_PATH + ".DIGESTS", "no SHA512 digest")


def test_digests_naming_another_file(site, keys, placement):
    site.publish(digests=keys.sign(digests_text(name="stage3-amd64-openrc-20240101T000000Z.tar.xz")))
    expect_failure(placement, keys, [site.url], site.url + TARBALL_PATH + ".DIGESTS", f"no digests for {NAME}")


def test_catalyst3_digests_with_absolute_paths(site, keys, placement):
    old_style = (f"# BLAKE2 (b2sum) HASH\n{hashlib.blake2b(DATA).hexdigest()}  /var/tmp/catalyst/builds/default/{NAME}\n"
                 f"# SHA512 HASH\n{hashlib.sha512(DATA).hexdigest()}  {NAME}\n")
    site.publish(digests=keys.sign(old_style))
    placement.update(keys, [site.url])
    assert placement.dest.read_bytes() == DATA


def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_first_mirror_down_second_good(site, keys, placement):
    site.publish()
    result = placement.update(keys, [closed_port_url(), site.url])
    assert result.name == NAME
    assert placement.dest.read_bytes() == DATA


def test_all_mirrors_failing_names_each(site, keys, placement):
    down = closed_port_url()
    site.publish(listing=listing_text())
    expect_failure(placement, keys, [down, site.url], down + LISTING_PATH, "Connection refused",
                   site.url + LISTING_PATH, "not signed")


def test_unchanged_listing_downloads_nothing(site, keys, placement):
    site.publish()
    have = (NAME, len(DATA), hashlib.sha512(DATA).hexdigest())
    result = placement.update(keys, [site.url], have=have)
    assert result == (NAME, len(DATA), have[2], None)
    assert site.requests_for(LISTING_PATH)
    assert not site.requests_for(TARBALL_PATH)
    assert not site.requests_for(TARBALL_PATH + ".DIGESTS")
    placement.assert_untouched()


def test_missing_keyring_is_reported_before_any_request(site, keys, placement, tmp_path):
    site.publish()
    with pytest.raises(UserError, match="keyring .*missing.asc does not exist"):
        mirror.fetch_latest_seed([site.url], "amd64", "openrc", tmp_path / "missing.asc", keys.primary,
                                 placement.work)
    assert not site.server.log


def test_plain_progress_lines_when_not_a_terminal(site, keys, tmp_path):
    site.publish()
    stream = io.StringIO()
    session = mirror.make_session()
    mirror.download(session, site.url + TARBALL_PATH, tmp_path / f"{NAME}.part", len(DATA), stream)
    assert stream.getvalue().splitlines()[-1] == f"{NAME}: 3/3 MiB (100%)"


def test_parse_listing_skips_comments_and_rejects_escapes():
    text = "# Latest\n# ts=1\n20240317T170433Z/a.tar.xz 10\n20240318T000000Z/b.tar.xz 20\n"
    assert mirror.parse_listing(text, "u") == [("20240317T170433Z/a.tar.xz", 10), ("20240318T000000Z/b.tar.xz", 20)]
    with pytest.raises(UserError, match="expected one"):
        mirror.single_entry(text, "u")
    with pytest.raises(UserError, match="not relative"):
        mirror.parse_listing("../../etc/passwd 10\n", "u")


def seed_files(root: Path, count: int) -> list:
    paths = []
    for index in range(count):
        path = root / f"stage3-amd64-openrc-2024010{index}T000000Z.tar.xz.verified"
        path.write_bytes(b"seed %d" % index)
        os.utime(path, (1_700_000_000 + index, 1_700_000_000 + index))
        paths.append(path)
    return paths


def test_place_seed_keeps_at_most_keep_previous(tmp_path):
    dest = tmp_path / "builds" / "stage3-latest.tar.xz"
    keep_dir = tmp_path / "seeds"
    for path in seed_files(tmp_path, 4):
        mirror.place_seed(path, dest, keep_dir, keep=2)
    assert dest.read_bytes() == b"seed 3"
    assert sorted(p.name for p in keep_dir.iterdir()) == [
        f"stage3-amd64-openrc-2024010{i}T000000Z.tar.xz" for i in (1, 2, 3)]


def test_place_seed_moves_a_hand_placed_seed_aside(tmp_path):
    dest = tmp_path / "builds" / "stage3-latest.tar.xz"
    dest.parent.mkdir()
    dest.write_bytes(b"by hand")
    [new] = seed_files(tmp_path, 1)
    mirror.place_seed(new, dest, tmp_path / "seeds", keep=1)
    assert dest.is_symlink() and dest.read_bytes() == b"seed 0"
    assert (tmp_path / "seeds" / "stage3-latest.tar.xz").read_bytes() == b"by hand"


def write_seed(tmp_path, digests=None):
    seed = tmp_path / NAME
    seed.write_bytes(DATA)
    if digests is not None:
        (tmp_path / f"{NAME}.DIGESTS").write_text(digests)
    return seed


def test_verify_local_seed_with_signed_digests(keys, tmp_path):
    seed = write_seed(tmp_path, keys.sign(digests_text()))
    assert mirror.verify_local_seed(seed, keys.keyring, keys.primary) == (NAME, len(DATA), hashlib.sha512(DATA).hexdigest())


def test_verify_local_seed_rejects_forged_signed_digests(keys, tmp_path):
    seed = write_seed(tmp_path, keys.sign_other(digests_text()))
    with pytest.raises(UserError, match=f"{NAME}.DIGESTS: the signature cannot be checked"):
        mirror.verify_local_seed(seed, keys.keyring, keys.primary)


def test_verify_local_seed_with_plain_digests_of_other_content(tmp_path):
    seed = write_seed(tmp_path, digests_text(data=b"other"))
    with pytest.raises(UserError, match="SHA512 does not match"):
        mirror.verify_local_seed(seed)


def test_verify_local_seed_without_digests(tmp_path):
    seed = write_seed(tmp_path)
    assert mirror.verify_local_seed(seed)[2] == hashlib.sha512(DATA).hexdigest()
    with pytest.raises(UserError, match="does not exist"):
        mirror.verify_local_seed(tmp_path / "missing.tar.xz")


def test_bad_part_file_of_an_earlier_run_is_downloaded_again(site, keys, placement):
    placement.work.mkdir()
    (placement.work / f"{NAME}.part").write_bytes(b"x" * 5000)
    site.publish()
    placement.update(keys, [site.url])
    assert placement.dest.read_bytes() == DATA
    assert [r.headers.get("Range") for r in site.requests_for(TARBALL_PATH)] == ["bytes=5000-", None]


def test_chunked_body_ending_early(site, keys, placement):
    def chunked_short(request):
        return Response((DATA[i:i + 65536] for i in range(0, len(DATA) - 65536, 65536)), status=200)

    site.publish(tarball=chunked_short)
    expect_failure(placement, keys, [site.url], site.url + TARBALL_PATH, "ended after",
                   f"signed listing says {len(DATA)}")
    assert site.requests_for(TARBALL_PATH)[0].headers.get("Range") is None


def test_place_seed_refuses_to_keep_seeds_beside_dest(tmp_path):
    [new] = seed_files(tmp_path, 1)
    with pytest.raises(UserError, match="directory of their own"):
        mirror.place_seed(new, tmp_path / "stage3-latest.tar.xz", tmp_path, keep=1)
    assert new.exists()


def test_progress_bar_on_a_terminal(site, tmp_path):
    import pty

    site.publish()
    master, slave = pty.openpty()
    with open(slave, "w") as terminal:
        mirror.download(mirror.make_session(), site.url + TARBALL_PATH, tmp_path / f"{NAME}.part", len(DATA),
                        terminal)
    shown = os.read(master, 65536).decode(errors="replace")
    os.close(master)
    assert NAME in shown and "100%" in shown and "3.00M/3.00M" in shown
