"""Inputs and outputs an adversary chooses: FIFOs, devices, files given twice, broken JSON,
configs that are not mappings. Each gets one line naming it; nothing blocks or is replaced."""

import json
import os
import threading

import pytest

from hessian_powerlaw import cli
from hessian_powerlaw.io import InputError, atomic_path, distinct, read_json, write_text
from hessian_powerlaw.report import noise_records


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    yield path
    # a reader that blocked on the FIFO would hang the test; nothing may have opened it
    assert path.exists() and not path.is_file()


def _run(argv, capsys, timeout=60):
    """cli.main in a thread with a deadline: a call that blocks (on a FIFO) fails the test."""
    result = {}

    def call():
        try:
            result["rc"] = cli.main(argv)
        except SystemExit as exit_:  # argparse
            result["rc"] = exit_.code

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{argv[0]} blocked"
    return result["rc"], capsys.readouterr().err


def test_outputs_never_replace_what_is_not_a_regular_file(fifo, tmp_path):
    with pytest.raises(InputError, match="not a regular file"):
        write_text(fifo, "x")
    with pytest.raises(InputError, match="not a regular file"):
        with atomic_path(tmp_path):
            pass
    assert not list(tmp_path.glob(".*.tmp"))


def test_inputs_that_are_fifos_are_refused_before_they_are_opened(fifo, tmp_path, capsys):
    rc, err = _run(["reproduction", str(fifo), "--out", str(tmp_path / "r.tsv")], capsys)
    assert rc == 2 and "not a regular file" in err and str(fifo) in err
    rc, err = _run(
        ["tables", str(fifo), "--proteins", str(tmp_path / "p.tsv"), "--bins", str(tmp_path / "b.tsv")],
        capsys,
    )
    assert rc == 2 and "not a regular file" in err
    out = tmp_path / "m.tsv"
    rc, err = _run(["protein", str(fifo), "--records", str(tmp_path / "rec"), "--out", str(out)], capsys)
    assert rc == 0 and "not a regular file" in err


def test_json_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json: not valid JSON"):
        read_json(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match="bad.json: holds a JSON list"):
        read_json(bad)


def _record(run, beta=2.0):
    return {"run": run, "status": "ok", "k": 1000, "beta": beta, "beta_sigma": 0.03, "s": 1.0}


def test_aggregators_refuse_an_input_given_twice(tmp_path, capsys):
    a = tmp_path / "t1-lenet-mnist_s0.json"
    a.write_text(json.dumps({**_record("t1-lenet-mnist_s0"), "d_ks": 0.01, "d_c": 0.043, "power_law": True}))
    with pytest.raises(InputError, match="given twice"):
        distinct([a, tmp_path / "." / a.name])
    for argv in (
        ["reproduction", str(a), str(a), "--out", str(tmp_path / "r.tsv")],
        ["dnn-table", str(a), str(a), "--out", str(tmp_path / "d.tsv")],
        [
            "curvature-table",
            str(a),
            str(a),
            "--out",
            str(tmp_path / "c.tsv"),
            "--lr-fits",
            str(tmp_path / "l"),
        ]
        + ["--negative-fits", str(tmp_path / "n")],
    ):
        rc, err = _run(argv, capsys)
        assert rc == 2 and "given twice" in err, argv
    copy = tmp_path / "copy.json"
    copy.write_text(a.read_text())
    rc, err = _run(["reproduction", str(a), str(copy), "--out", str(tmp_path / "r.tsv")], capsys)
    assert rc == 2 and "run t1-lenet-mnist_s0 is given twice" in err


def test_protein_tables_given_twice_are_refused(tmp_path, capsys):
    table = tmp_path / "one.tsv"
    table.write_text("pdb_id\tstatus\n1AKI\tfailed\n")
    rc, err = _run(
        [
            "tables",
            str(table),
            str(table),
            "--proteins",
            str(tmp_path / "p.tsv"),
            "--bins",
            str(tmp_path / "b"),
        ],
        capsys,
    )
    assert rc == 2 and "given twice" in err


def test_a_record_whose_numbers_are_text_gets_one_line(tmp_path, capsys):
    path = tmp_path / "t1-lenet-mnist_s0.json"
    path.write_text(json.dumps({**_record("t1-lenet-mnist_s0", beta="2.0"), "d_ks": 0.01, "d_c": 0.043}))
    rc, err = _run(["reproduction", str(path), "--out", str(tmp_path / "r.tsv")], capsys)
    assert rc == 2 and "t1-lenet-mnist_s0: beta is '2.0', not a number" in err


def _trace_run(init_seed, width=30, lr=0.05):
    return {
        "experiment": "trace-run",
        "noise": "sgd",
        "lr": lr,
        "init_seed": init_seed,
        "batch_size": 25,
        "steps": 100,
        "seed": 0,
        "n_params": 6220,
        "n_train_used": 500,
        "label_smoothing": 0.1,
        "pool": 2,
        "width": width,
        "trace_rate": -1e-4,
        "trace_start": 1.0,
        "trace_end": 0.99,
        "history": {},
    }


def test_noise_tables_refuse_mixed_networks_and_repeated_runs():
    paths = ["a.json", "b.json"]
    with pytest.raises(ValueError, match="different networks .*width 30 vs 40"):
        noise_records.check_records([_trace_run(0), _trace_run(1, width=40)], paths)
    with pytest.raises(ValueError, match="b.json repeats the run of a.json"):
        noise_records.check_records([_trace_run(0), _trace_run(0)], paths)
    noise_records.check_records([_trace_run(0), _trace_run(1)], paths)


@pytest.mark.parametrize("text", ["[]", "0", "false", "- a\n- b\n", "just text"])
def test_a_config_must_be_a_mapping(tmp_path, capsys, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert cli.main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "a config is a mapping" in err and err.count("\n") == 0


def test_an_empty_config_means_the_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# nothing set\n")
    assert cli.main(["check-config", str(path)]) == 0
