"""The first hour of a new user (issue 17): the README's commands from a clean clone, the
user settings file, `python -m nae data` and `sample` outside make, the book's pages.

All fast (seconds): `make -n` only prints recipes, nothing is installed or trained.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nae import cli
from nae import data as D
from nae import settings
from nae.errors import ConfigError
from nae.viz import save_image_grid

REPO = Path(__file__).resolve().parent.parent
needs_make = pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None,
                                reason="needs make and git [optional]")

# commands any POSIX shell has; everything else a recipe runs must be named in the README
SHELL_WORDS = {"command", "test", "[", "echo", "touch", "exit", "true", ":", "rm", "mkdir", "cd"}
KEYWORDS = {"if", "then", "else", "elif", "fi", "!", "{", "}", "(", ")", "do", "done", "while", "for"}
SEPARATORS = {";", "&&", "||", "|", "(", ")", "\n"}


# --------------------------------------------------------------------------- make -n from a clean clone


@pytest.fixture(scope="module")
def clean_clone(tmp_path_factory):
    """A `git clone` of this checkout's HEAD (so: no .venv, no node_modules, no _build)."""
    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.skip("needs make and git [optional]")
    dest = tmp_path_factory.mktemp("clone") / "nae"
    p = subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        pytest.skip(f"cannot clone {REPO} [optional]: {p.stderr.strip()}")
    return dest


def _dry_run(clone, target):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "NAE_"))}
    p = subprocess.run(["make", "-n", target], cwd=clone, capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    return p.stdout.replace("\\\n", " ")


def _commands(script):
    """The programs a shell script runs: the words in command position, and the tools
    probed with `command -v TOOL`."""
    lex = shlex.shlex(script, posix=True, punctuation_chars=True)
    lex.whitespace = " \t\r"  # keep newlines: they separate commands
    lex.wordchars += "$?{}"  # $?, ${VAR}: parts of words
    words, start, probe = [], True, False
    for tok in lex:
        if tok in SEPARATORS:
            start = True
            continue
        if probe and not tok.startswith("-"):
            words.append(tok)
            probe = False
        if start:
            if tok in KEYWORDS or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tok):
                continue
            words.append(tok)
            start = False
            probe = tok == "command"
    return words


def _readme_mentions(word):
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", (REPO / "README.md").read_text()) is not None


def test_commands_parser_sees_programs_and_probes():
    script = 'command -v node >/dev/null || { echo "x; y"; exit 1; }\nA=1 .venv/bin/python -m pytest; [ -d x ] && npm i'
    assert _commands(script) == ["command", "node", "echo", "exit", ".venv/bin/python", "[", "npm"]


@pytest.mark.parametrize("target", ["book", "test"])
def test_readme_commands_need_nothing_the_readme_does_not_mention(clean_clone, target):
    script = _dry_run(clean_clone, target)
    assert ".venv/bin/python -m pip install" in script, "a clean clone must set up .venv first"
    unmentioned = set()
    for word in _commands(script):
        if word.startswith(".venv/bin/"):
            continue  # installed by the setup recipe (pip, from pyproject.toml), which is checked too
        if word not in SHELL_WORDS and not _readme_mentions(word):
            unmentioned.add(word)
    assert not unmentioned, f"`make {target}` runs {sorted(unmentioned)}, which the README never mentions"
    assert _readme_mentions(f"make {target}")


def test_makefile_variables_a_user_may_need_are_in_the_readme():
    mk = (REPO / "Makefile").read_text()
    for var in set(re.findall(r"\b(NAE_[A-Z_]+)\b", mk)):
        assert _readme_mentions(var), var


# --------------------------------------------------------------------------- make lab, make test


def _make(*args, **kw):
    # -o .venv/.installed: never (re)install here; PY=true: print the recipe's effect only
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}  # not the flags of a calling make
    return subprocess.run(["make", "-o", ".venv/.installed", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env=env, **kw)


@needs_make
def test_make_lab_prints_where_to_open_it_and_runs_as_root():
    out = _make("-n", "lab").stdout
    assert "--ServerApp.open_browser=False" in out and "http://127.0.0.1:8888/lab" in out
    assert ("--allow-root" in out) == (os.geteuid() == 0)
    assert ("--allow-root" in _make("-n", "lab", "LAB_ARGS=--port=8890").stdout) == (os.geteuid() == 0)


@needs_make
def test_make_test_says_in_one_line_when_the_browser_tests_skip():
    p = _make("test-lib", "PY=true", "CHROMIUM=/no/such/chromium")
    assert p.returncode == 0, p.stderr
    notes = [line for line in p.stdout.splitlines() if "browser tests were skipped" in line]
    assert len(notes) == 1 and "apt-get install chromium nodejs npm" in notes[0]
    assert "npm install" not in p.stdout  # nothing to install without a browser
    assert " -rs" in _make("-n", "test-lib", "test-notebooks").stdout


# --------------------------------------------------------------------------- the user settings file


@pytest.fixture
def user_config(tmp_path, monkeypatch):
    """A settings file in tmp_path (NAE_CONFIG_FILE), and no NAE_DATA."""
    cfg = tmp_path / "cfg" / "config.toml"
    cfg.parent.mkdir()
    monkeypatch.setenv("NAE_CONFIG_FILE", str(cfg))
    monkeypatch.delenv("NAE_DATA", raising=False)
    return cfg


def test_data_root_order_env_then_settings_file_then_repository(user_config, tmp_path, monkeypatch):
    assert D.data_root_origin() == (REPO / "datasets", "the default: datasets/ in the repository")
    user_config.write_text(f'data_root = "{tmp_path / "mine"}"\n')
    assert D.data_root() == tmp_path / "mine"
    assert D.data_root_origin()[1] == f"data_root in {user_config}"
    user_config.write_text('data_root = "../rel"\n')  # relative to the file's folder
    assert D.data_root() == user_config.parent / "../rel"
    monkeypatch.setenv("NAE_DATA", str(tmp_path / "env"))
    assert D.data_root_origin() == (tmp_path / "env", "from $NAE_DATA")


def test_settings_file_location(monkeypatch, tmp_path):
    monkeypatch.delenv("NAE_CONFIG_FILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert settings.config_file() == tmp_path / "nae" / "config.toml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert settings.config_file() == Path.home() / ".config" / "nae" / "config.toml"


@pytest.mark.parametrize("text,needle", [
    ('data_rot = "/x"\n', "did you mean 'data_root'"),
    ("data_root = 3\n", "must be a non-empty string"),
    ("data_root = /x\n", "not a valid TOML file"),
])
def test_bad_settings_file_is_a_one_line_error(user_config, text, needle, capsys):
    user_config.write_text(text)
    with pytest.raises(ConfigError) as e:
        D.data_root()
    assert needle in str(e.value) and str(user_config) in str(e.value)
    assert cli.main(["data"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_cli_data_prints_the_real_folders_and_how_to_point_at_data(user_config, tmp_path, capsys):
    root = tmp_path / "empty-root"
    root.mkdir()
    user_config.write_text(f'data_root = "{root}"\n')
    assert cli.main(["data"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"data root: {root} (data_root in {user_config})")
    assert "<root>" not in out
    assert f"looked in: {root / 'MNIST' / 'raw'}" in out and f"into {root / 'MNIST' / 'raw'}/" in out
    assert "export NAE_DATA=" in out and str(user_config) in out


def test_missing_set_error_names_the_real_root(user_config, tmp_path):
    user_config.write_text(f'data_root = "{tmp_path}"\n')
    with pytest.raises(D.DataError) as e:
        D.load_dataset("MNIST", "test")
    assert "<root>" not in str(e.value) and str(tmp_path / "MNIST" / "raw") in str(e.value)


# --------------------------------------------------------------------------- sample --out s.png


def test_image_grid_png_is_big_enough_to_see(tmp_path):
    x = torch.rand(32, 1, 28, 28)
    save_image_grid(x, tmp_path / "a.png")
    im = np.asarray(Image.open(tmp_path / "a.png"))
    k = 3  # 28 px -> 84 px, the smallest whole factor reaching 64
    assert im.shape == (k * (4 * 30 + 2), k * (8 * 30 + 2))
    cell = im[k * 2: k * 30, k * 2: k * 30]  # the first image, without padding
    assert (cell[::k, ::k].repeat(k, 0).repeat(k, 1) == cell).all()  # nearest neighbour: k x k blocks
    assert (im[:k * 2] == 255).all()  # white padding
    save_image_grid(torch.rand(8, 3, 32, 32), tmp_path / "b.png", nrow=4)
    assert Image.open(tmp_path / "b.png").size == (2 * (4 * 34 + 2), 2 * (2 * 34 + 2))
    save_image_grid(torch.rand(2, 3, 64, 64), tmp_path / "c.png")
    assert Image.open(tmp_path / "c.png").size == (2 * 66 + 2, 66 + 2)  # 64 px already: not enlarged


def test_sample_refuses_nrow_below_one(tmp_path, capsys):
    assert cli.main(["sample", str(tmp_path), "--nrow", "0", "--out", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err.strip() == "error: --nrow must be positive, got 0"


# --------------------------------------------------------------------------- the book


def _code_lines(md):
    inside = False
    for n, line in enumerate(md.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            inside = not inside
        elif inside:
            yield n, line


def test_book_code_lines_fit_the_page():
    too_long = [f"{md.name}:{n} ({len(line)})" for md in sorted((REPO / "book").glob("*.md"))
                for n, line in _code_lines(md) if len(line) > 76]
    assert not too_long, f"code lines over 76 characters are cut off in the book: {too_long}"
    assert "nae.css" in (REPO / "_config.yml").read_text() and (REPO / "book" / "_static" / "nae.css").is_file()


# chapter name in the intro's reading list -> notebook
CHAPTERS = {"2D": "01_", "MNIST": "02_", "CIFAR-10": "03_", "CelebA": "04_", "Interactive sampling": "05_"}


def _has_results(nb):
    """False when the stored outputs say that no published model exists yet (the image
    chapters print ``nae.tutorial.image_chapter.NOT_TRAINED`` for a phase not trained yet)."""
    from nae.tutorial.image_chapter import NOT_TRAINED

    cells = json.loads(nb.read_text())["cells"]
    text = json.dumps([c.get("outputs", []) for c in cells])
    return "No published" not in text and NOT_TRAINED not in text


def test_intro_says_which_chapters_have_results():
    intro = (REPO / "book" / "intro.md").read_text()
    bullets = re.findall(r"^- \*\*(.+?)\*\*(.*?)(?=^- |^\S|\Z)", intro, re.M | re.S)
    status = {name: "Results: yes" in body for name, body in bullets if "Results: " in body}
    assert set(status) == set(CHAPTERS), status
    for name, prefixes in CHAPTERS.items():
        for prefix in (prefixes if isinstance(prefixes, tuple) else (prefixes,)):
            nb = next((REPO / "notebooks").glob(f"{prefix}*.ipynb"))
            assert _has_results(nb) == status[name], f"book/intro.md is wrong about {nb.name}"
    assert "every number and figure" not in intro or all(status.values())


# --------------------------------------------------------------------------- the environment


def _clean_python(code: str) -> list:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def test_import_nae_sets_no_environment_variable():
    """``import nae`` leaves the environment alone and does not even load torch."""
    code = "import os, sys, nae; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    assert _clean_python(code) == ["None", "False"]


def test_the_command_line_sets_omp_wait_policy_before_torch_loads():
    """``python -m nae`` sets OMP_WAIT_POLICY=PASSIVE while torch (and with it OpenMP, which
    reads the variable once) is not loaded yet."""
    code = ("import os, sys, contextlib, io, nae.__main__ as m; before = 'torch' in sys.modules; "
            "out = io.StringIO(); f = contextlib.redirect_stdout(out); f.__enter__(); rc = m.main(['data']); "
            "f.__exit__(None, None, None); print(before, os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules, rc)")
    assert _clean_python(code) == ["False", "PASSIVE", "True", "0"]
