"""Flow rhythms: configuration → DAG schedule, run instants, run form, and clear errors.

Run instants are asked of Airflow's own timetables (``next_runs`` drives
``next_dagrun_info_v2`` as the scheduler and backfills do), so the DST cases below check the
real scheduling, not our arithmetic. Europe/Paris is UTC+2 in summer (CEST) and UTC+1 in winter
(CET); in 2026 summer time starts on 29 March at 02:00 CET and ends on 25 October at 03:00 CEST.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from croniter import croniter

from passerelle.assets import flow_change_asset
from passerelle.config import ConfigError, FlowConfigError, load_settings
from passerelle.config.flows import DEFAULT_RHYTHMS, FLOW_NAMES, parse_flow
from passerelle.dag_settings import check_flows, flow_schedule, flow_settings
from passerelle.params import flow_params
from passerelle.timetables import every_minutes_to_crons, next_runs, times_to_crons

UTC = UTC
PARIS = "Europe/Paris"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def cfg_with(flows: dict, *, tz: str = PARIS, path: str = "/etc/passerelle/passerelle.yaml") -> dict:
    """A raw configuration (partial sections, as in a file) with the given flows section."""
    return {
        "_path": path,
        "shop": {"timezone": tz},
        "catalog": {"entities": ["family", "brand", "supplier", "article", "variant"]},
        "flows": flows,
    }


# --------------------------------------------------------------------------- cron


def test_cron_is_read_in_the_shop_timezone_and_runs_once_on_both_dst_nights():
    from airflow.sdk import CronTriggerTimetable

    schedule = flow_schedule("catalog", {"cron": "0 2 * * *"}, PARIS)
    assert isinstance(schedule, CronTriggerTimetable)
    # Autumn: 02:00 happens twice on 25 October; the flow runs once, at 02:00 CET (01:00 UTC).
    assert next_runs(schedule, utc(2026, 10, 24), 3) == [
        utc(2026, 10, 24, 0),
        utc(2026, 10, 25, 1),
        utc(2026, 10, 26, 1),
    ]
    # Spring: 02:00 does not exist on 29 March; the flow runs once, at 03:00 CEST (01:00 UTC).
    assert next_runs(schedule, utc(2026, 3, 28), 3) == [utc(2026, 3, 28, 1), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0)]


def test_cron_presets_and_extra_spaces_are_accepted():
    assert parse_flow("report", {"cron": "@daily"}).cron == "@daily"
    assert parse_flow("report", {"cron": " 0  6 * * 1-5 "}).cron == "0 6 * * 1-5"
    runs = next_runs(flow_schedule("report", {"cron": "0 6 * * 1-5"}, "UTC"), utc(2026, 11, 20), 3)
    assert runs == [utc(2026, 11, 20, 6), utc(2026, 11, 23, 6), utc(2026, 11, 24, 6)]  # Fri, Mon, Tue


# --------------------------------------------------------------------------- times


def test_times_0800_1300_keep_local_time_across_the_autumn_dst_change():
    from airflow.sdk import MultipleCronTriggerTimetable

    schedule = flow_schedule("prices_stock", {"times": ["08:00", "13:00"]}, PARIS)
    assert isinstance(schedule, MultipleCronTriggerTimetable)
    runs = next_runs(schedule, utc(2026, 10, 23), 8)
    assert runs == [
        utc(2026, 10, 23, 6),
        utc(2026, 10, 23, 11),  # CEST, UTC+2: 08:00 and 13:00 local
        utc(2026, 10, 24, 6),
        utc(2026, 10, 24, 11),
        utc(2026, 10, 25, 7),
        utc(2026, 10, 25, 12),  # CET, UTC+1 from 25 October 03:00 CEST
        utc(2026, 10, 26, 7),
        utc(2026, 10, 26, 12),
    ]
    from zoneinfo import ZoneInfo

    assert {r.astimezone(ZoneInfo(PARIS)).strftime("%H:%M") for r in runs} == {"08:00", "13:00"}


def test_times_0800_1300_keep_local_time_across_the_spring_dst_change():
    schedule = flow_schedule("prices_stock", {"times": ["13:00", "08:00"]}, PARIS)
    assert next_runs(schedule, utc(2026, 3, 28), 4) == [
        utc(2026, 3, 28, 7),
        utc(2026, 3, 28, 12),  # CET, UTC+1
        utc(2026, 3, 29, 6),
        utc(2026, 3, 29, 11),  # CEST, UTC+2 from 29 March 02:00 CET
    ]


def test_times_are_grouped_by_minute_into_crons():
    assert times_to_crons(["08:00", "13:00"]) == ["0 8,13 * * *"]
    assert times_to_crons(["12:30", "8:00", "08:30"]) == ["0 8 * * *", "30 8,12 * * *"]
    schedule = flow_schedule("prices_stock", {"times": ["12:30", "8:00", "08:30"]}, "UTC")
    assert next_runs(schedule, utc(2026, 5, 1), 4) == [
        utc(2026, 5, 1, 8),
        utc(2026, 5, 1, 8, 30),
        utc(2026, 5, 1, 12, 30),
        utc(2026, 5, 2, 8),
    ]


def test_a_single_time_may_be_given_as_a_string():
    assert parse_flow("report", {"times": "06:00"}).times == ("06:00",)


# --------------------------------------------------------------------------- every_minutes


@pytest.mark.parametrize("n", [d for d in range(1, 1441) if 1440 % d == 0])
def test_every_minutes_crons_fire_exactly_on_the_grid_of_the_day(n):
    crons = every_minutes_to_crons(n)
    assert crons is not None
    day = datetime(2026, 1, 1)
    fired = set()
    for expr in crons:
        it = croniter(expr, day - timedelta(seconds=1))
        while (t := it.get_next(datetime)) < day + timedelta(days=1):
            fired.add(int((t - day).total_seconds() // 60))
    assert fired == set(range(0, 1440, n))


def test_every_15_minutes_is_clock_aligned_and_ignores_dst():
    schedule = flow_schedule("prices_stock", {"every_minutes": 15}, PARIS)
    # Across the autumn fold (01:00 UTC = 03:00 CEST → 02:00 CET): still one run every 15 minutes.
    runs = next_runs(schedule, utc(2026, 10, 25, 0, 37), 6)
    assert runs[0] == utc(2026, 10, 25, 0, 45)
    assert [b - a for a, b in zip(runs, runs[1:])] == [timedelta(minutes=15)] * 5


def test_every_90_minutes_runs_across_midnight_without_a_gap():
    from airflow.sdk import MultipleCronTriggerTimetable

    schedule = flow_schedule("orders_in", {"every_minutes": 90}, PARIS)
    assert isinstance(schedule, MultipleCronTriggerTimetable)
    runs = next_runs(schedule, utc(2026, 6, 1, 21), 4)
    assert runs == [utc(2026, 6, 1, 21), utc(2026, 6, 1, 22, 30), utc(2026, 6, 2, 0), utc(2026, 6, 2, 1, 30)]


def test_every_7_minutes_falls_back_to_a_delta_timetable():
    from airflow.sdk import DeltaTriggerTimetable

    assert every_minutes_to_crons(7) is None
    schedule = flow_schedule("orders_in", {"every_minutes": 7}, PARIS)
    assert isinstance(schedule, DeltaTriggerTimetable)
    assert next_runs(schedule, utc(2026, 6, 1, 10, 3), 3) == [
        utc(2026, 6, 1, 10, 3),
        utc(2026, 6, 1, 10, 10),
        utc(2026, 6, 1, 10, 17),
    ]


def test_backfill_over_a_range_is_ordered_and_the_same_every_time():
    schedule = flow_schedule("prices_stock", {"every_minutes": 15}, PARIS)
    first = next_runs(schedule, utc(2026, 6, 1, 0, 7), 100, until=utc(2026, 6, 1, 1))
    again = next_runs(schedule, utc(2026, 6, 1, 0, 7), 100, until=utc(2026, 6, 1, 1))
    assert (
        first == again == [utc(2026, 6, 1, 0, 15), utc(2026, 6, 1, 0, 30), utc(2026, 6, 1, 0, 45), utc(2026, 6, 1, 1)]
    )


# --------------------------------------------------------------------------- manual, disabled, on_change


def test_manual_and_disabled_flows_have_no_schedule():
    assert flow_schedule("report", {"manual": True}, PARIS) is None
    assert flow_schedule("catalog", {"cron": "0 2 * * *", "enabled": False}, PARIS) is None
    assert next_runs(None, utc(2026, 1, 1), 3) == []


def test_on_change_alone_is_the_flow_change_asset():
    from airflow.sdk import Asset

    schedule = flow_schedule("prices_stock", {"on_change": True}, PARIS)
    assert isinstance(schedule, Asset)
    assert schedule == flow_change_asset("prices_stock")
    assert schedule.name == "passerelle.change.prices_stock"
    assert next_runs(schedule, utc(2026, 1, 1), 3) == []


def test_on_change_uses_the_asset_given_by_the_caller():
    from airflow.sdk import Asset

    mine = Asset(name="erp.stock.changed")
    assert flow_schedule("prices_stock", {"on_change": True}, PARIS, change_asset=mine) is mine


def test_on_change_with_times_runs_on_both():
    from airflow.sdk import AssetOrTimeSchedule, MultipleCronTriggerTimetable

    schedule = flow_schedule("prices_stock", {"times": ["08:00", "13:00"], "on_change": True}, PARIS)
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert isinstance(schedule.timetable, MultipleCronTriggerTimetable)
    assert schedule.asset_condition == flow_change_asset("prices_stock")
    assert next_runs(schedule, utc(2026, 10, 24, 12), 3) == [
        utc(2026, 10, 25, 7),
        utc(2026, 10, 25, 12),
        utc(2026, 10, 26, 7),
    ]


def test_options_without_rhythm_and_flows_left_out_keep_the_default_rhythm():
    specs = check_flows(cfg_with({"catalog": {"retries": 5}, "report": None, "orders_in": {"manual": False}}))
    assert set(specs) == set(FLOW_NAMES)
    for name, spec in specs.items():
        assert spec.cron == DEFAULT_RHYTHMS[name]["cron"]
    assert specs["catalog"].retries == 5


# --------------------------------------------------------------------------- bad configuration

BAD = [
    # (flows section, words the message must contain)
    ({"catlog": {"cron": "0 2 * * *"}}, ["flows.catlog", "unknown flow", "did you mean 'catalog'"]),
    ({"catalog": {"crn": "0 2 * * *"}}, ["flows.catalog.crn", "unknown key", "did you mean 'cron'"]),
    ({"catalog": {"cron": "0 2 * * *", "times": ["08:00"]}}, ["flows.catalog", "cron and times are both set"]),
    ({"catalog": {"every_minutes": 5, "manual": True}}, ["flows.catalog", "manual: true and every_minutes"]),
    ({"catalog": {"on_change": True, "manual": True}}, ["flows.catalog", "manual: true and on_change"]),
    ({"catalog": {"cron": "0 25 * * *"}}, ["flows.catalog.cron", "'0 25 * * *' is not a valid cron expression"]),
    ({"catalog": {"cron": "0 2 * *"}}, ["flows.catalog.cron", "not a valid cron expression"]),
    ({"catalog": {"cron": "0 0 2 * * *"}}, ["flows.catalog.cron", "6 fields; expected 5"]),
    ({"catalog": {"cron": "0 0 30 2 *"}}, ["flows.catalog.cron", "never fires"]),
    ({"catalog": {"cron": 2}}, ["flows.catalog.cron", "expected a cron expression"]),
    ({"catalog": {"times": ["08:00", "25:00"]}}, ["flows.catalog.times[1]: '25:00' is not a time of day (HH:MM)"]),
    ({"catalog": {"times": ["8h00"]}}, ["flows.catalog.times[0]: '8h00' is not a time of day (HH:MM)"]),
    ({"catalog": {"times": ["08:00", "8:00"]}}, ["flows.catalog.times[1]: '8:00' is the same time as times[0]"]),
    ({"catalog": {"times": []}}, ["flows.catalog.times", "expected a list of times"]),
    ({"prices_stock": {"every_minutes": 0}}, ["flows.prices_stock.every_minutes", "from 1 to 1440", "got 0"]),
    ({"prices_stock": {"every_minutes": 1441}}, ["flows.prices_stock.every_minutes", "got 1441"]),
    ({"prices_stock": {"every_minutes": "15"}}, ["flows.prices_stock.every_minutes", "got '15'"]),
    ({"prices_stock": {"every_minutes": True}}, ["flows.prices_stock.every_minutes", "got True"]),
    ({"prices_stock": {"on_change": "yes"}}, ["flows.prices_stock.on_change", "expected true or false"]),
    ({"prices_stock": {"enabled": "no"}}, ["flows.prices_stock.enabled", "expected true or false"]),
    ({"prices_stock": {"max_active_runs": 0}}, ["flows.prices_stock.max_active_runs", ">= 1"]),
    ({"prices_stock": {"retries": -1}}, ["flows.prices_stock.retries", "got -1"]),
    ({"prices_stock": {"pool": "stock pool!"}}, ["flows.prices_stock.pool", "pool name"]),
    ({"prices_stock": {"entities": []}}, ["flows.prices_stock.entities", "non-empty list"]),
    ({"prices_stock": {"entities": ["stock", "stock"]}}, ["flows.prices_stock.entities[1]", "'stock' is listed twice"]),
    ({"catalog": {"catchup": True}}, ["flows.catalog.catchup", "needs flows.catalog.start_date"]),
    ({"catalog": {"catchup": True, "start_date": "2026-13-01"}}, ["flows.catalog.start_date", "is not a date"]),
    ({"catalog": ["0 2 * * *"]}, ["flows.catalog", "expected a mapping"]),
]


@pytest.mark.parametrize(("flows", "expected"), BAD, ids=[str(flows) for flows, _ in BAD])
def test_bad_flow_configuration_names_file_flow_and_key(flows, expected):
    name = next(iter(flows))
    target = name if name in FLOW_NAMES else "catalog"
    with pytest.raises(FlowConfigError) as err:
        flow_settings(target, cfg_with(flows))
    message = str(err.value)
    assert message.startswith("/etc/passerelle/passerelle.yaml: ")
    for words in expected:
        assert words in message, message
    assert isinstance(err.value, ConfigError)


def test_unknown_timezone_is_reported_on_shop_timezone():
    with pytest.raises(FlowConfigError, match=r"\.yaml: shop\.timezone: 'Europe/Pariss' is not a known timezone"):
        flow_settings("catalog", cfg_with({}, tz="Europe/Pariss"))
    with pytest.raises(FlowConfigError, match=r"shop\.timezone"):
        flow_schedule("catalog", {"cron": "0 2 * * *"}, "Mars/Olympus")


def test_a_mistake_in_one_flow_fails_every_flow_since_the_whole_file_is_checked():
    # Until the typed model, a mistake in one flow let the other DAGs import; now the whole file
    # is checked at every DAG parse, so it shows on every DAG rather than hiding behind one.
    cfg = cfg_with({"report": {"cron": "0 6 * *"}})
    for name in ("catalog", "report"):
        with pytest.raises(FlowConfigError, match=r"flows\.report\.cron"):
            flow_settings(name, cfg)
    with pytest.raises(FlowConfigError, match=r"flows\.report\.cron"):
        check_flows(cfg)


def test_unquoted_yaml_time_is_explained(tmp_path: Path):
    # YAML 1.1 reads 13:00 (unquoted) as 780, the number of minutes in base 60; 08:00 stays a string.
    path = tmp_path / "passerelle.yaml"
    path.write_text("flows:\n  prices_stock:\n    times: [08:00, 13:00]\n", encoding="utf-8")
    assert yaml.safe_load(path.read_text())["flows"]["prices_stock"]["times"] == ["08:00", 780]
    with pytest.raises(FlowConfigError) as err:
        load_settings(path)
    assert str(err.value) == (
        f"{path}: flows.prices_stock.times[1]: 780 is not a time of day (HH:MM); YAML reads an unquoted "
        '13:00 as the number 780: write it in quotes, "13:00"'
    )


def test_bad_configuration_fails_the_dag_import_with_the_message(tmp_path: Path):
    from airflow.dag_processing.dagbag import DagBag

    config = tmp_path / "passerelle.yaml"
    config.write_text("flows:\n  catalog:\n    times: ['08:00', '25:00']\n", encoding="utf-8")
    dag_folder = tmp_path / "dags"
    dag_folder.mkdir()
    (dag_folder / "catalog.py").write_text(
        textwrap.dedent(
            f"""
            from airflow.sdk import DAG
            from passerelle.config import load_settings
            from passerelle.dag_settings import flow_settings

            with DAG("passerelle_catalog", **flow_settings("catalog", load_settings({str(config)!r}))):
                pass
            """
        ),
        encoding="utf-8",
    )
    bag = DagBag(dag_folder=dag_folder)
    assert bag.dags == {}
    [error] = bag.import_errors.values()
    assert f"{config}: flows.catalog.times[1]: '25:00' is not a time of day (HH:MM)" in error

    config.write_text("flows:\n  catalog:\n    times: ['08:00', '23:00']\n", encoding="utf-8")
    bag = DagBag(dag_folder=dag_folder)
    assert bag.import_errors == {}
    timetable = bag.dags["passerelle_catalog"].timetable
    assert next_runs(timetable, utc(2026, 7, 1), 2) == [utc(2026, 7, 1, 6), utc(2026, 7, 1, 21)]  # CEST


# --------------------------------------------------------------------------- run form (params)


def test_params_form_fields_defaults_and_validation():
    from airflow.sdk.exceptions import ParamValidationError

    params = flow_params(["article", "variant"], replay=True)
    assert list(params) == ["mode", "entities", "dry_run", "replay_quarantine"]
    mode, entities, dry_run, replay = (params[k] for k in params)
    assert mode.schema["enum"] == ["delta", "new", "full"]
    assert mode.resolve() == "delta"
    assert mode.resolve("full") == "full"
    assert mode.resolve("new") == "new"
    with pytest.raises(ParamValidationError):
        mode.resolve("everything")
    assert entities.schema["type"] == "array"
    assert entities.resolve() == ["article", "variant"]
    assert entities.resolve(["variant"]) == ["variant"]
    for bad in (["brand"], [], ["article", "article"]):
        with pytest.raises(ParamValidationError):
            entities.resolve(bad)
    assert dry_run.resolve() is False and dry_run.schema["type"] == "boolean"
    assert replay.resolve() is False and replay.schema["type"] == "boolean"
    for param in params.values():
        assert param.schema["title"] and param.description


def test_params_form_without_replay_or_entities():
    assert list(flow_params(["price", "stock"])) == ["mode", "entities", "dry_run"]
    assert list(flow_params([])) == ["mode", "dry_run"]


# --------------------------------------------------------------------------- DAG settings


def test_shipped_configuration_is_valid_and_builds_every_dag():
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    cfg = load_settings()
    shipped = yaml.safe_load(Path(cfg.source).read_text(encoding="utf-8"))["flows"]
    assert set(shipped) == set(FLOW_NAMES)
    for name in FLOW_NAMES:
        assert shipped[name] == DEFAULT_RHYTHMS[name], "the YAML shows the defaults"
        settings = flow_settings(name, cfg)
        dag = DAG(f"passerelle_{name}", **settings)
        # Round trip through the scheduler's serialization: what the scheduler will really see.
        back = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        assert back.timetable.summary == DEFAULT_RHYTHMS[name]["cron"]
        assert back.max_active_runs == 1 and back.catchup is False
        assert set(back.tags) == {"passerelle", name}
        assert dag.default_args["owner"] == "passerelle" and dag.default_args["retries"] == 2
    assert list(flow_settings("catalog", cfg)["params"]["entities"].value) == list(cfg.catalog.entities)
    assert "replay_quarantine" in flow_settings("orders_in", cfg)["params"]


def test_settings_carry_catchup_start_date_pool_retries_and_entities():
    from zoneinfo import ZoneInfo

    from airflow.sdk import DAG

    cfg = cfg_with(
        {
            "prices_stock": {
                "times": ["08:00", "13:00"],
                "on_change": True,
                "catchup": True,
                "start_date": "2026-03-01",
                "max_active_runs": 2,
                "pool": "stock_sync",
                "retries": 4,
                "entities": ["stock"],
            }
        }
    )
    settings = flow_settings("prices_stock", cfg)
    assert settings["start_date"] == datetime(2026, 3, 1, tzinfo=ZoneInfo(PARIS))
    assert settings["default_args"]["pool"] == "stock_sync" and settings["default_args"]["retries"] == 4
    assert settings["params"]["entities"].value == ["stock"]
    dag = DAG("passerelle_prices_stock", **settings)
    assert dag.catchup is True and dag.max_active_runs == 2
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    assert dag.default_args["pool"] == "stock_sync"


def test_disabled_flow_keeps_its_dag_without_schedule():
    settings = flow_settings("report", cfg_with({"report": {"cron": "0 6 * * *", "enabled": False}}))
    assert settings["schedule"] is None
    assert "disabled" in settings["tags"]
    assert "disabled" in settings["description"]
