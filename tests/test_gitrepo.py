"""The bare repository against a real local upstream with real signed commits."""
import os
from datetime import datetime, timedelta, timezone

import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.inputs import gitrepo
from tests.support.gitupstream import Upstream


@pytest.fixture
def upstream(tmp_path):
    made = Upstream(tmp_path)
    yield made
    made.close()


def test_stable_resolves_to_same_sha_twice_then_follows_new_commits(upstream, tmp_path):
    bare = tmp_path / "repos" / "gentoo.git"
    first = upstream.commit()
    assert gitrepo.update_stable(bare, upstream.url) == first
    assert gitrepo.update_stable(bare, upstream.url) == first
    second = upstream.commit()
    assert gitrepo.update_stable(bare, upstream.url) == second
    assert (bare / "shallow").is_file()
    gitrepo.verify_commit(bare, second, upstream.keyring, upstream.primary)


def test_missing_branch_names_the_url(upstream, tmp_path):
    upstream.commit()
    with pytest.raises(UserError, match=f"{upstream.url}: git clone failed: .*nosuchbranch"):
        gitrepo.update_stable(tmp_path / "gentoo.git", upstream.url, branch="nosuchbranch")
    assert not (tmp_path / "gentoo.git").exists()


def test_unsigned_commit_is_rejected(upstream, tmp_path):
    bare = tmp_path / "gentoo.git"
    upstream.commit(sign=None)
    sha = gitrepo.update_stable(bare, upstream.url)
    with pytest.raises(UserError, match=f"commit {sha} of .*gentoo.git: not signed"):
        gitrepo.verify_commit(bare, sha, upstream.keyring, upstream.primary)


def test_commit_signed_by_unknown_key_is_rejected(upstream, tmp_path):
    bare = tmp_path / "gentoo.git"
    upstream.commit(sign="other")
    sha = gitrepo.update_stable(bare, upstream.url)
    with pytest.raises(UserError, match=f"commit {sha}.*not in the keyring"):
        gitrepo.verify_commit(bare, sha, upstream.keyring, upstream.primary)


def test_commit_signed_by_a_key_other_than_the_pinned_one_is_rejected(upstream, tmp_path):
    bare = tmp_path / "gentoo.git"
    upstream.commit(sign="other")
    sha = gitrepo.update_stable(bare, upstream.url)
    with pytest.raises(UserError, match=f"commit {sha}.*primary {upstream.other_primary}.*not by the pinned key"):
        gitrepo.verify_commit(bare, sha, upstream.both_keyring, upstream.primary)


def test_commit_info_is_utc_whatever_the_committer_zone(upstream, tmp_path):
    bare = tmp_path / "gentoo.git"
    upstream.commit(date="2024-03-17T19:04:33+02:00")
    gitrepo.update_stable(bare, upstream.url)
    sha, date = gitrepo.commit_info(bare, "stable")
    assert date == datetime(2024, 3, 17, 17, 4, 33, tzinfo=timezone.utc)
    assert gitrepo.stamp_from_date(date) == "20240317T170433Z"
    assert sha == upstream.git("rev-parse", "HEAD")


def test_stamp_from_date_converts_to_utc():
    east = timezone(timedelta(hours=5, minutes=30))
    assert gitrepo.stamp_from_date(datetime(2024, 1, 1, 3, 0, 0, tzinfo=east)) == "20231231T213000Z"
    with pytest.raises(ValueError):
        gitrepo.stamp_from_date(datetime(2024, 1, 1))


def test_ensure_commit_fetches_a_missing_commit_only_once(upstream, tmp_path):
    bare = tmp_path / "gentoo.git"
    old = upstream.commit()
    upstream.commit()
    gitrepo.update_stable(bare, upstream.url)
    assert not gitrepo.has_commit(bare, old)
    gitrepo.ensure_commit(bare, upstream.url, old)
    assert gitrepo.has_commit(bare, old)
    gitrepo.verify_commit(bare, old, upstream.keyring, upstream.primary)
    # Present now: no fetch, so an unreachable URL does not matter.
    gitrepo.ensure_commit(bare, (tmp_path / "nowhere").as_uri(), old)


def test_ensure_commit_into_a_missing_repository_and_bad_sha(upstream, tmp_path):
    sha = upstream.commit()
    bare = tmp_path / "new" / "gentoo.git"
    gitrepo.ensure_commit(bare, upstream.url, sha)
    assert gitrepo.has_commit(bare, sha)
    with pytest.raises(UserError, match="not a full 40-hex SHA"):
        gitrepo.ensure_commit(bare, upstream.url, "stable")
    with pytest.raises(UserError, match=f"commit {'0' * 40}.*git fetch failed"):
        gitrepo.ensure_commit(bare, upstream.url, "0" * 40)


def test_prune_keeps_the_newest_and_the_pinned(tmp_path):
    shas = [f"{index:x}" * 40 for index in range(1, 6)]
    for age, sha in enumerate(shas):
        path = tmp_path / f"gentoo-{sha}.sqfs"
        path.write_bytes(b"sqfs")
        os.utime(path, (1_700_000_000 - age * 100, 1_700_000_000 - age * 100))
    (tmp_path / "gentoo-stable.sqfs").write_bytes(b"by hand")
    (tmp_path / f"other-{shas[4]}.sqfs").write_bytes(b"other repo")
    removed = gitrepo.prune_snapshots(tmp_path, keep=2, pinned_sha=shas[4])
    assert sorted(p.name for p in removed) == [f"gentoo-{shas[2]}.sqfs", f"gentoo-{shas[3]}.sqfs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"gentoo-{shas[0]}.sqfs", f"gentoo-{shas[1]}.sqfs", f"gentoo-{shas[4]}.sqfs", "gentoo-stable.sqfs",
         f"other-{shas[4]}.sqfs"])
    assert gitrepo.prune_snapshots(tmp_path / "missing", keep=1, pinned_sha=None) == []


def test_verify_of_an_absent_commit_names_it(upstream, tmp_path):
    bare = tmp_path / "gentoo.git"
    upstream.commit()
    gitrepo.update_stable(bare, upstream.url)
    with pytest.raises(UserError, match=f"gentoo.git: {'1' * 40} is not a commit of this repository"):
        gitrepo.verify_commit(bare, "1" * 40, upstream.keyring, upstream.primary)


def test_a_snapshot_another_build_pins_is_never_pruned(tmp_path):
    shas = [f"{n:x}" * 40 for n in range(1, 5)]
    for age, sha in enumerate(reversed(shas)):
        path = tmp_path / f"gentoo-{sha}.sqfs"
        path.write_bytes(b"snapshot")
        os.utime(path, (1_700_000_000 - age * 100, 1_700_000_000 - age * 100))
    gitrepo.record_pin(tmp_path, "23.0-other", shas[0])  # the oldest: another config's pin
    gitrepo.record_pin(tmp_path, "23.0-zfs", shas[3])
    removed = gitrepo.prune_snapshots(tmp_path, keep=1, pinned_sha=shas[3])
    assert sorted(p.name for p in removed) == sorted(f"gentoo-{sha}.sqfs" for sha in shas[1:3])
    assert (tmp_path / f"gentoo-{shas[0]}.sqfs").is_file()


def test_any_key_of_the_keyring_may_sign_as_for_the_raw_gentoo_repository(upstream, tmp_path):
    """`snapshot.fingerprint: any`: commits signed by different developers' keys all verify, as
    long as gpg finds each key in the keyring; an unsigned commit or an unknown key still fails."""
    bare = tmp_path / "gentoo.git"
    for signer in ("release", "other"):  # the fetch is shallow: verify each tip as it comes
        sha = upstream.commit(sign=signer)
        assert gitrepo.update_stable(bare, upstream.url) == sha
        gitrepo.verify_commit(bare, sha, upstream.both_keyring, "any")
    by_other = sha
    with pytest.raises(UserError, match="not in the keyring"):
        gitrepo.verify_commit(bare, by_other, upstream.keyring, "any")
    unsigned = upstream.commit(sign=None)
    gitrepo.update_stable(bare, upstream.url)
    with pytest.raises(UserError, match="not signed"):
        gitrepo.verify_commit(bare, unsigned, upstream.both_keyring, "any")
