"""scripts/device_window.py: cutting files into the pieces of device calls and putting them together."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import device_window as dw  # noqa: E402


def test_files_are_cut_to_fill_each_call_and_put_together_again(tmp_path):
    rng = __import__("random").Random(0)
    files = {"data/a.bin": bytes(rng.getrandbits(8) for _ in range(2500)),
             "data/b[1].bin": b"", "init/c.pt": bytes(rng.getrandbits(8) for _ in range(700))}
    src = tmp_path / "src"
    for name, raw in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(raw)
    parts = dw.cut([(n, len(r)) for n, r in files.items()], part_bytes=1000, piece_bytes=600, part_files=3)
    sizes = [sum(p["size"] for p in part) for part in parts]
    assert all(len(part) <= 3 for part in parts) and all(p["size"] <= 600 for part in parts for p in part)
    assert all(size == 1000 or len(part) == 3 for size, part in zip(sizes[:-1], parts))  # each call full
    assert sum(sizes) == 3200
    names = [p["name"] for part in parts for p in part]
    assert len(set(names)) == len(names) and all(set(n) <= set("abcdefghijklmnopqrstuvwxyz0123456789._-") for n in names)

    plan = {n: {"sha256": dw.sha256(src / n), "pieces": [p["name"] for part in parts for p in part if p["file"] == n]}
            for n in files}
    calls = []
    for k, part in enumerate(parts):
        d = tmp_path / f"call{k}"
        d.mkdir()
        for n in {p["file"] for p in part}:
            dw.write_pieces(src / n, [p for p in part if p["file"] == n], d)
        calls.append(d)
    out = tmp_path / "out"
    done, incomplete = dw.assemble(plan, calls[:1], out)  # only the first call has arrived
    assert "data/a.bin" in incomplete and not (out / "data/a.bin").exists()
    done, incomplete = dw.assemble(plan, calls, out)
    assert sorted(done) == sorted(files) and not incomplete
    assert all((out / n).read_bytes() == raw for n, raw in files.items())
    calls_seen = []  # a later call does not hash the files it already put together again...
    real_sha = dw.sha256
    dw.sha256 = lambda p: calls_seen.append(p) or real_sha(p)
    try:
        assert sorted(dw.assemble(plan, calls, out)[0]) == sorted(files) and not calls_seen
        (out / "init/c.pt").write_bytes(b"changed")  # ...unless one has changed since: then it is rebuilt
        assert sorted(dw.assemble(plan, calls, out)[0]) == sorted(files)
        assert [p.name for p in calls_seen] == ["c.pt", "c.pt.part"]
        assert (out / "init/c.pt").read_bytes() == files["init/c.pt"]
    finally:
        dw.sha256 = real_sha

    bad = calls[0] / parts[0][0]["name"]  # a corrupt piece is found by the sha256 of the whole file
    bad.write_bytes(b"x" + bad.read_bytes()[1:])
    with pytest.raises(SystemExit, match="sha256"):
        dw.assemble(plan, calls, tmp_path / "out2")
    assert not list((tmp_path / "out2").rglob("*.bin"))


def test_every_job_names_a_known_config_and_valid_overrides():
    from nae.config import load_config

    for name, job in dw.JOBS.items():
        if "command" in job:
            continue
        args = [a.replace("{DEV}", "/tmp/dev") for a in job["args"] if "init_" not in a]  # no files here
        cfg = load_config(job["config"], "full", args)
        assert cfg.data.batch_size > 0, name
    assert json.loads(json.dumps(list(dw.JOBS)))  # the names travel in plan.json
