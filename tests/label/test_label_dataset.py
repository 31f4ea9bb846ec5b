"""`prefcli data labels`: label folders become a dataset with per-person held-out tasks."""

from __future__ import annotations

from cli_runner import run_cli
from json_schemas import validate_text  # docs/schemas/: every command's JSON
from label_fixtures import make_pool, make_session


def _label(pool, out, choices, user_seed):
    s = make_session(pool, out, seed=user_seed)
    for c in choices:
        v = s.view()
        s.answer(v["pair"]["token"], c)
    return s


def test_two_label_folders_become_a_dataset_eval_can_read(tmp_path, capsys):
    from prefcli.data.dataset import Dataset

    pool = make_pool(tmp_path / "pool", prompts=2, per_prompt=6)
    _label(pool, tmp_path / "alice", ["left", "right", "tie", "left", "skip", "right", "left"], 1)
    s = _label(pool, tmp_path / "bob", ["right", "right", "left", "left", "left"], 2)
    s.undo()  # bob's last answer does not count
    code, out, err = run_cli(
        capsys,
        "data",
        "labels",
        tmp_path / "alice",
        tmp_path / "bob",
        "--out",
        tmp_path / "ds",
        "--n-ref",
        "2",
        "--format",
        "json",
    )
    assert code == 0, err
    ds = Dataset.open(tmp_path / "ds")
    pairs = ds.pairs("test")
    by_user = {}
    for p in pairs:
        by_user.setdefault(p.user_id, []).append(p)
    # make_session labels as "tester": the second folder is told apart by its name
    assert sorted(by_user) == ["tester", "tester@bob"]
    assert len(by_user["tester"]) == 5 and len(by_user["tester@bob"]) == 4  # no ties, skips or undone answers
    tasks = ds.tasks("test", "1v1", n_ref=2)
    assert tasks and all(t.history is not None and len(t.history) == 2 for t in tasks)
    for t in tasks:
        own = {p.liked_image_id for p in by_user[t.user_id]} | {p.disliked_image_id for p in by_user[t.user_id]}
        assert {c.image_id for c in t.candidates} <= own  # held out per person
        assert all(h.liked.image_id in own for h in t.history.pairs)
    rows = validate_text(out, "data labels")["results"]["rows"]  # docs/schemas/data-labels.schema.json
    test_row = next(r for r in rows if r["split"] == "test")
    assert test_row["users"] == 2 and test_row["pairs"] == 9
    # a rerun reports the built dataset; a folder that is not a label folder is one line
    code, _, err = run_cli(capsys, "data", "labels", tmp_path / "alice", "--out", tmp_path / "ds")
    assert code == 0 and "already built" in err
    code, _, err = run_cli(capsys, "data", "labels", tmp_path / "pool", "--out", tmp_path / "ds2")
    assert code == 2 and "not a label folder" in err
