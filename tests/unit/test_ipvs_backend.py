"""lsaa.backends.ipvsadm against outputs recorded from ipvsadm 1.31 in the lab kernel
(tests/fixtures/ipvsadm/capture.sh says how)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsaa.backends.ipvsadm import (
    dest_arg,
    parse_list,
    parse_save,
    restore_input,
    service_args,
    split_hostport,
)

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "ipvsadm"


def fixture(name: str) -> str:
    return (FIX / name).read_text()


def by_key(text: str) -> dict[tuple[str, str, int, bool], object]:
    return {s.key: s for s in parse_list(text)}


def test_full_listing_every_kind_of_service() -> None:
    svcs = {s.key: s for s in parse_list(fixture("Ln.txt"))}
    assert len(svcs) == 8
    web = svcs[("tcp", "192.0.2.10", 80, False)]
    assert (web.scheduler, web.persistent, web.netmask, web.flags) == ("wlc", 300, "", frozenset())
    assert [(d.addr, d.port, d.method, d.weight) for d in web.dests] == [
        ("10.0.0.11", 80, "nat", 1), ("10.0.0.12", 8080, "nat", 3)]
    sh = svcs[("tcp", "192.0.2.10", 443, False)]
    assert sh.flags == {"sh-fallback", "sh-port"}
    assert (sh.persistent, sh.netmask) == (600, "255.255.255.0")
    assert [(d.method, d.weight) for d in sh.dests] == [("dr", 5), ("dr", 0)]
    assert svcs[("udp", "192.0.2.10", 53, False)].ops
    assert svcs[("sctp", "192.0.2.10", 3868, False)].scheduler == "fo"
    v6 = svcs[("tcp", "2001:db8::10", 80, True)]
    assert (v6.scheduler, v6.persistent, v6.netmask) == ("lc", 120, "64")
    assert [d.key for d in v6.dests] == [("2001:db8::11", 80), ("2001:db8::12", 8080)]
    fwm = svcs[("fwmark", "10", 0, False)]
    assert [(d.addr, d.port, d.method, d.weight) for d in fwm.dests] == [("10.0.0.21", 0, "tun", 3)]
    fwm6 = svcs[("fwmark", "11", 0, True)]
    assert fwm6.scheduler == "mh" and fwm6.flags == {"mh-fallback", "mh-port"}
    assert fwm6.dests[0].key == ("2001:db8::21", 0)
    local = svcs[("tcp", "192.0.2.10", 25, False)]
    # Linux 6.1 lists a local real server with its configured method ("Route"),
    # not the "Local" older kernels printed
    assert local.dests[0].method == "dr"


@pytest.mark.parametrize(("name", "key"), [
    ("Ln-t-v4.txt", ("tcp", "192.0.2.10", 80, False)),
    ("Ln-t-v6.txt", ("tcp", "2001:db8::10", 80, True)),
    ("Ln-f.txt", ("fwmark", "10", 0, False)),
    ("Ln-f6.txt", ("fwmark", "11", 0, True)),
])
def test_one_service_listing_has_no_banner(name: str, key: tuple[str, str, int, bool]) -> None:
    assert not fixture(name).startswith("IP Virtual Server")
    svcs = parse_list(fixture(name))
    assert [s.key for s in svcs] == [key]
    assert svcs[0].dests


def test_thresholds_listing() -> None:
    svc = parse_list(fixture("Ln-t-thresholds.txt"))[0]
    assert [(d.key, d.upper, d.lower, d.weight) for d in svc.dests] == [
        (("10.0.0.11", 80), 0, 0, -1), (("10.0.0.12", 8080), 100, 10, -1)]
    full = {s.key: s for s in parse_list(fixture("Ln-thresholds.txt"))}
    assert full[("tcp", "192.0.2.10", 443, False)].flags == {"sh-fallback", "sh-port"}


def test_exact_listing_parses_like_the_plain_one() -> None:
    assert repr(parse_list(fixture("Ln-exact.txt"))) == repr(parse_list(fixture("Ln.txt")))


def test_save_agrees_with_list() -> None:
    saved = {s.key: s for s in parse_save(fixture("Sn.txt"))}
    listed = {s.key: s for s in parse_list(fixture("Ln.txt"))}
    assert saved.keys() == listed.keys()
    for key, s in saved.items():
        lst = listed[key]
        assert (s.scheduler, s.flags, s.persistent, s.netmask, s.ops) == (
            lst.scheduler, lst.flags, lst.persistent, lst.netmask, lst.ops), key
        methods = [("dr" if d.method == "local" else d.method) for d in lst.dests]
        assert [(d.key, d.method, d.weight) for d in s.dests] == [
            (d.key, m, d.weight) for d, m in zip(lst.dests, methods)], key


def test_rate_listing_is_refused_not_misread() -> None:
    # --rate has the same service lines with counters where the scheduler goes:
    # read as a listing, "0" would become a scheduler
    with pytest.raises(ValueError, match="rate"):
        parse_list(fixture("Ln-rate.txt"))


def test_missing_service_and_errors_recorded() -> None:
    assert fixture("Ln-t-missing.rc").strip() == "1"
    assert fixture("Ln-t-missing.err").strip() == "No such service"
    assert fixture("A-twos.err").strip() == "Scheduler or persistence engine not found"
    assert fixture("host-no-ipvs.rc").strip() == "2"
    # ipvsadm -R keeps going after a failed line and exits 0
    assert fixture("R-partial.rc").strip() == "0"
    after = parse_list(fixture("Ln-t-after-R-partial.txt"))[0]
    assert [(d.key, d.weight) for d in after.dests] == [
        (("10.0.0.11", 80), 7), (("10.0.0.12", 8080), 3), (("10.0.0.15", 80), 1)]


def test_spelling() -> None:
    assert service_args("tcp", "192.0.2.1", 80, False) == ["-t", "192.0.2.1:80"]
    assert service_args("udp", "2001:db8::1", 53, True) == ["-u", "[2001:db8::1]:53"]
    assert service_args("sctp", "192.0.2.1", 3868, False) == ["--sctp-service", "192.0.2.1:3868"]
    assert service_args("fwmark", "7", 0, True) == ["-f", "7", "-6"]
    assert dest_arg("2001:db8::1", 0) == "[2001:db8::1]:0"
    assert restore_input([["-A", "-t", "1.2.3.4:80"], ["-D", "-f", "1"]]) == (
        "-A -t 1.2.3.4:80\n-D -f 1\n")
    assert split_hostport("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError):
        split_hostport("[::1]80")
