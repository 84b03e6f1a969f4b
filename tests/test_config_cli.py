import subprocess
import sys

import pytest
import yaml

from conftest import BUNDLED, EDGE, ROOT
from hessian_powerlaw import cli
from hessian_powerlaw.config import ConfigError, defaults, load_config, validate
from hessian_powerlaw.io import read_tsv


def test_default_config_file_is_valid():
    config = load_config(ROOT / "config.yaml")
    assert config["anm"]["cutoff"] == 9.0 and config["fit"]["k"] == 0.1


def test_schema_fills_defaults():
    config = defaults()
    assert config["pdb"]["query"]["identity_cutoff"] == 30
    assert config["pdb"]["download"]["base_url"] == "https://files.rcsb.org/download"
    runs = validate({"dnn": {"curvature": {"runs": [{"model": ["lenet"], "dataset": ["mnist"]}]}}})
    run = runs["dnn"]["curvature"]["runs"][0]  # the shared run dimensions get their defaults too
    assert (
        run["lr"] == [0.1]
        and run["schedule"] == ["constant"]
        and run["seed"] == [0]
        and run["width"] == [100]
    )


@pytest.mark.parametrize(
    "config, fragment",
    [
        ({"anm": {"cutof": 9}}, "anm: Additional properties are not allowed ('cutof' was unexpected)"),
        ({"anm": {"cutoff": "nine"}}, "anm.cutoff: 'nine' is not of type 'number'"),
        ({"anm": {"cutoff": 0}}, "anm.cutoff: 0 is less than or equal to the minimum of 0"),
        ({"pdb": {"source": "ftp"}}, "pdb.source: 'ftp' is not one of"),
        ({"fit": {"k": 12.5}}, "fit.k: a count must be an integer"),
        ({"pdb": {"min_residues": 500, "max_residues": 200}}, "pdb.min_residues is larger"),
        ({"bogus": 1}, "(top level): Additional properties"),
        ({"results": "out; rm -rf ~"}, "results: 'out; rm -rf ~' does not match"),
        (
            {"dnn": {"sweeps": [{"model": ["vgg"], "dataset": ["mnist"]}]}},
            "dnn.sweeps.0.model.0: 'vgg' is not one of",
        ),
        ({"dnn": {"sweeps": [{"model": ["lenet"], "dataset": ["imagenet"]}]}}, "'imagenet' is not one of"),
        ({"dnn": {"sweeps": [{"model": ["lenet"], "dataset": ["mnist"], "optimizer": ["sgdd"]}]}}, "'sgdd'"),
        ({"dnn": {"spectrum": {"k": 1}}}, "dnn.spectrum.k: 1 is less than the minimum of 2"),
        ({"dnn": {"curvature": {"n_hvps": 3}}}, "dnn.curvature.n_hvps: 3 is less than the minimum of 4"),
        ({"dnn": {"curvature": {"estimator": "xtrace"}}}, "dnn.curvature.estimator: 'xtrace' is not one of"),
        (
            {
                "dnn": {
                    "curvature": {
                        "runs": [{"model": ["lenet"], "dataset": ["mnist"], "schedule": ["cosine"]}]
                    }
                }
            },
            "dnn.curvature.runs.0.schedule.0: 'cosine' is not one of",
        ),
        (
            {"dnn": {"curvature": {"runs": [{"model": ["lenet"], "dataset": ["mnist"], "lr": [0]}]}}},
            "dnn.curvature.runs.0.lr.0: 0 is less than or equal to the minimum of 0",
        ),
    ],
)
def test_bad_config_names_the_key(config, fragment):
    with pytest.raises(ConfigError) as err:
        validate(config, "my.yaml")
    assert fragment in str(err.value) and str(err.value).startswith("my.yaml: ")
    assert "\n" not in str(err.value)


def test_check_config_command(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"fit": {"kk": 3}}))
    assert cli.main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "fit" in err and "'kk' was unexpected" in err
    assert cli.main(["check-config", str(ROOT / "config.yaml")]) == 0


def test_help_lists_every_subcommand():
    out = subprocess.run(
        [sys.executable, "-m", "hessian_powerlaw.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in (
        "check-config",
        "select",
        "download",
        "protein",
        "tables",
        "curvature-table",
        "curvature-plots",
        "reproduction",
    ):
        assert command in out


def test_protein_command_contract(tmp_path):
    """`hessian-powerlaw protein [--cutoff 9] [--k ...] --out table.tsv FILE...`."""
    bad = tmp_path / "bad.pdb.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00broken")
    out = tmp_path / "table.tsv"
    proc = subprocess.run(
        [
            "hessian-powerlaw",
            "protein",
            "--cutoff",
            "9",
            "--k",
            "1000",
            "--out",
            str(out),
            str(BUNDLED / "4hhb.pdb.gz"),
            str(bad),
            str(EDGE / "3tah.pdb.gz"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {r["file"].split("/")[-1]: r for r in read_tsv(out)}
    header = out.read_text().splitlines()[0].split("\t")
    for column in (
        "pdb_id",
        "n_residues",
        "n_modes",
        "n_zero_modes",
        "k",
        "xmin",
        "beta",
        "beta_sigma",
        "s",
        "d_ks",
        "d_c",
        "power_law",
        "status",
        "reason",
    ):
        assert column in header
    hhb = rows["4hhb.pdb.gz"]
    assert hhb["status"] == "ok" and hhb["power_law"] is True and round(hhb["beta"], 3) == 2.008
    assert rows["bad.pdb.gz"]["status"] == "failed" and "corrupt gzip" in rows["bad.pdb.gz"]["reason"]
    assert rows["3tah.pdb.gz"]["status"] == "skipped"
    assert "bad.pdb.gz" in proc.stderr  # the log line names the file


def test_protein_command_rejects_bad_k(capsys):
    with pytest.raises(SystemExit):
        cli.main(["protein", "--k", "2.5", "--out", "x.tsv", "f.pdb"])
    assert "integer count" in capsys.readouterr().err


def test_select_local_empty_is_an_error(tmp_path, capsys):
    code = cli.main(["select", "--local", str(tmp_path / "*.pdb"), "--out", str(tmp_path / "e.tsv")])
    assert code == 2 and "no entries found" in capsys.readouterr().err
    assert not (tmp_path / "e.tsv").exists()


def test_tables_size_bins(tmp_path):
    table = tmp_path / "t.tsv"
    files = [str(BUNDLED / f) for f in ("1aki.pdb.gz", "4hhb.pdb.gz", "4f7i.pdb.gz")]
    assert cli.main(["protein", "--no-compare", "--out", str(table), *files, str(EDGE / "1a8o.pdb.gz")]) == 0
    bins, md, fails = tmp_path / "b.tsv", tmp_path / "b.md", tmp_path / "f.tsv"
    assert (
        cli.main(
            [
                "tables",
                str(table),
                "--proteins",
                str(tmp_path / "p.tsv"),
                "--bins",
                str(bins),
                "--markdown",
                str(md),
                "--failures",
                str(fails),
            ]
        )
        == 0
    )
    rows = {r["bin_3n"]: r for r in read_tsv(bins)}
    assert [rows[b]["count"] for b in ("300-1000", "1000-3000", "3000-6000", "all")] == [1, 1, 1, 3]
    assert rows["all"]["skipped"] == 1
    proteins = {r["pdb_id"]: r for r in read_tsv(tmp_path / "p.tsv")}
    assert rows["1000-3000"]["beta_mean"] == pytest.approx(proteins["4HHB"]["beta"], rel=1e-5)
    assert "1.050 ± 0.175" in md.read_text() and "1 entries skipped" in md.read_text()
    assert read_tsv(fails)[0]["pdb_id"] == "1A8O"


BILLION_LAUGHS = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize(
    "text, fragment",
    [
        (BILLION_LAUGHS, "YAML aliases (*name) are not allowed"),
        ("fit:\n  k: .nan\n", "fit.k: nan is not a finite number"),
        ("anm:\n  cutoff: .inf\n", "anm.cutoff: inf is not a finite number"),
        ("dnn:\n  spectrum:\n    tol: .nan\n", "dnn.spectrum.tol: nan is not a finite number"),
        ("results: ../elsewhere\n", "results: '../elsewhere' leads outside the working directory"),
        ("results: /tmp/out\n", "leads outside the working directory"),
        ("fit: [unclosed\n", "not valid YAML"),
        (
            "reproduction:\n  experiments:\n    - {id: a, part: p, train: {model: lenet}}\n"
            "    - {id: a, part: p, train: {model: fcn}}\n",
            "reproduction.experiments: id 'a' appears twice",
        ),
        (
            "reproduction:\n  experiments:\n    - {id: a, part: p, reuse: b}\n",
            "reproduction.experiments: a: reuse 'b' names no experiment that trains networks",
        ),
        (
            "reproduction:\n  experiments:\n    - {id: a, part: p, train: {model: lenet}}\n"
            "    - {id: b, part: p, reuse: a, seeds: [0, 1]}\n",
            "reproduction.experiments: b: seeds [1] are not among a's",
        ),
        (
            "reproduction:\n  experiments:\n    - {id: a, part: p}\n",
            "reproduction.experiments: a: give its train settings",
        ),
        (
            "reproduction:\n  experiments:\n"
            "    - {id: a, part: p, protein: {files: x.pdb}, train: {epochs: 1}}\n",
            "a protein experiment takes no train",
        ),
    ],
)
def test_hostile_config_files_get_one_line_errors(tmp_path, capsys, text, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert cli.main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and fragment in err and str(path) in err, err


def test_oversize_config_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        load_config(path)
