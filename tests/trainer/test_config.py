"""Config loading: presets validate, overrides apply, bad values fail naming the field."""

import tomllib

import pytest

from dagrpo.errors import UserError
from trainer.config import PhaseConfig, load_config, to_toml

PHASE = 'phases=[{group="group1", steps=2, tau=0.3}]'


@pytest.mark.parametrize("preset", ["smoke", "demo", "paper"])
def test_presets_validate(repo_root, preset):
    cfg = load_config(repo_root / "configs" / f"{preset}.toml")
    assert cfg.phases and cfg.train.G >= 2


def test_paper_preset_has_table3_values(repo_root):
    cfg = load_config(repo_root / "configs" / "paper.toml")
    assert (cfg.train.G, cfg.train.max_new_tokens, cfg.train.eta_lambda) == (8, 1024, 1e-2)
    assert [p.steps for p in cfg.phases] == [840, 400]


def test_embedded_demo_matches_configs_demo(repo_root):
    from trainer.commands import demo_config

    assert demo_config() == load_config(repo_root / "configs" / "demo.toml")


def test_overrides_and_round_trip():
    cfg = load_config(None, [PHASE, "train.lr=1e-5", "train.std_scaling=group", "phases.0.steps=7"])
    assert cfg.train.lr == 1e-5 and cfg.train.std_scaling == "group" and cfg.phases[0].steps == 7
    assert load_config(None, base=tomllib.loads(to_toml(cfg))) == cfg


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("train.G=1", "train.G"),
        ("train.bogus=1", "train.bogus"),
        ("phases.0.tau=1.5", "phases.0.tau"),
        ("phases.0.tau=-0.1", "phases.0.tau"),
        ('model.name_or_path="/no/such/model"', "model.name_or_path"),
        ('train.std_scaling="rank"', "train.std_scaling"),
        ('cloud.backend="gateway"', "cloud"),
    ],
)
def test_bad_values_fail_naming_the_field(override, field):
    with pytest.raises(UserError, match=f"^invalid config: {field}"):
        load_config(None, [PHASE, override])


def test_unknown_task_and_group_fail():
    with pytest.raises(UserError, match="unknown task 'nope'"):
        load_config(None, ['phases=[{tasks=["nope"], steps=1, tau=0.3}]'])
    with pytest.raises(UserError, match="unknown group 'group9'"):
        load_config(None, ['phases=[{group="group9", steps=1, tau=0.3}]'])


def test_tau_schedule():
    phase = PhaseConfig(tasks=["math"], steps=9, tau_schedule=[(0, 0.5), (3, 0.2), (6, 0.4)])
    assert [phase.tau_at(s) for s in range(9)] == [0.5] * 3 + [0.2] * 3 + [0.4] * 3
    with pytest.raises(UserError, match="every tau must lie in"):
        load_config(None, ['phases=[{tasks=["math"], steps=2, tau_schedule=[[0, 0.5], [1, 1.2]]}]'])
    with pytest.raises(UserError, match="exactly one of `tau`"):
        load_config(None, ['phases=[{tasks=["math"], steps=2}]'])


def test_missing_file_and_bad_set_syntax(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "none.toml")
    with pytest.raises(UserError, match="key=value"):
        load_config(None, [PHASE, "train.lr"])


def test_eval_tasks_restrict_the_phase_end_evaluations():
    phases = 'phases=[{tasks=["math", "science"], steps=1, tau=0.3}, {tasks=["code"], steps=1, tau=0.5}]'
    cfg = load_config(None, [phases])
    assert cfg.eval_task_names(0) == ["math", "science"] and cfg.eval_task_names(1) == ["math", "science", "code"]
    cfg = load_config(None, [phases, 'train.eval_tasks=["code", "math"]'])
    assert cfg.eval_task_names(0) == ["math"]  # code is not seen yet at the end of phase 0
    assert cfg.eval_task_names(1) == ["math", "code"]  # order of appearance, not of the list
    with pytest.raises(UserError, match="train.eval_tasks: 'knowledge' is not a task of any phase"):
        load_config(None, [phases, 'train.eval_tasks=["knowledge"]'])
