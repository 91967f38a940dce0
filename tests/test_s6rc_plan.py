"""s6-rc source definitions resolved into what runs, in which order (pure, but `load` reads a tree)."""

from __future__ import annotations

from pathlib import Path

from supervisor.s6.rcplan import Definition, load, plan


def d(name: str, kind: str = "longrun", deps: tuple[str, ...] = (), contents: tuple[str, ...] = (),
      problems: tuple[str, ...] = ()) -> Definition:
    return Definition(name, kind, f"/x/{name}", deps, contents, "true" if kind == "oneshot" else "", "", problems)


def of(*definitions: Definition) -> dict[str, Definition]:
    return {definition.name: definition for definition in definitions}


def test_the_user_bundle_with_every_dependency_dependencies_first():
    result = plan(of(
        d("user", "bundle", contents=("app", "web")),
        d("app", deps=("init-config", "base")),
        d("web", deps=("app",)),
        d("init-config", "oneshot", deps=("init-adduser",)),
        d("init-adduser", "oneshot"),
        d("unused"),
    ))
    assert result.problems == ()
    assert result.first == ("init-adduser", "init-config", "app", "web")
    assert result.second == ()
    assert result.needs["web"] == ("app",) and "base" in result.needs["app"]  # base: pyinit's own stage


def test_bundles_expand_to_their_contents_and_user2_comes_after_services_d():
    result = plan(of(
        d("user", "bundle", contents=("stack",)),
        d("stack", "bundle", contents=("db", "cache")),
        d("db"), d("cache"),
        d("user2", "bundle", contents=("late",)),
        d("late", deps=("legacy-services", "db")),
    ))
    assert result.first == ("cache", "db")
    assert result.second == ("late",)


def test_cycles_and_missing_names_are_reported_with_the_names_involved_and_left_out():
    result = plan(of(
        d("user", "bundle", contents=("a", "c", "fine", "orphan")),
        d("a", deps=("b",)), d("b", deps=("a",)),
        d("c", deps=("nowhere",)),
        d("orphan", deps=("c",)),
        d("fine"),
    ))
    assert result.first == ("fine",)
    assert any("dependency cycle: a -> b -> a" in p or "dependency cycle: b -> a -> b" in p for p in result.problems)
    assert "nowhere: no such service (needed by c)" in result.problems
    assert {"a", "b", "c", "orphan"} <= result.left_out


def test_a_user_service_waiting_for_services_d_is_a_problem():
    result = plan(of(d("user", "bundle", contents=("early",)), d("early", deps=("legacy-services",))))
    assert result.first == () and any("legacy-services" in p for p in result.problems)


def test_load_reads_dependencies_d_and_v3_files_and_user_bundles_d(tmp_path: Path):
    source = tmp_path / "s6-rc.d"
    for name, kind in (("app", "longrun"), ("prep", "oneshot"), ("bad", "daemon")):
        (source / name).mkdir(parents=True)
        (source / name / "type").write_text(kind + "\n")
    (source / "app" / "run").write_text("#!/bin/sh\nexec sleep 1\n")
    (source / "app" / "dependencies.d").mkdir()
    (source / "app" / "dependencies.d" / "prep").touch()
    (source / "prep" / "up").write_text("echo hi\n")
    (source / "prep" / "dependencies").write_text("# v3's file\nbase\n")
    bundles = tmp_path / "user-bundles.d" / "user" / "contents.d"
    bundles.mkdir(parents=True)
    (bundles / "app").touch()
    definitions = load(str(source), [str(tmp_path / "user-bundles.d")])
    assert definitions["app"].dependencies == ("prep",) and definitions["prep"].dependencies == ("base",)
    assert definitions["prep"].up == "echo hi"
    assert definitions["user"].contents == ("app",)
    assert definitions["bad"].problems
    result = plan(definitions)
    assert result.first == ("prep", "app")
    assert any(p.startswith("bad: type is 'daemon'") for p in result.problems)


def test_a_pipeline_name_is_a_bundle_of_the_pipeline_and_producers_follow_consumers(tmp_path: Path):
    source = tmp_path / "s6-rc.d"
    for name, files in (("web", {"producer-for": "web-log"}),
                        ("web-log", {"consumer-for": "web", "pipeline-name": "web-pipeline"})):
        (source / name).mkdir(parents=True)
        (source / name / "type").write_text("longrun\n")
        (source / name / "run").write_text("#!/bin/sh\n")
        for filename, content in files.items():
            (source / name / filename).write_text(content + "\n")
    (source / "user" / "contents.d").mkdir(parents=True)
    (source / "user" / "type").write_text("bundle\n")
    (source / "user" / "contents.d" / "web-pipeline").touch()
    definitions = load(str(source), [])
    assert definitions["web-pipeline"].contents == ("web", "web-log")
    assert plan(definitions).first == ("web-log", "web")  # the logger first: no line written to nobody


def test_a_chain_too_deep_to_follow_is_a_reported_problem_not_an_exception():
    chain = [d(f"s{i}", deps=(f"s{i + 1}",)) for i in range(5000)] + [d("s5000")]
    result = plan(of(d("user", "bundle", contents=("s0",)), *chain))
    assert result.first == () and any("nest too deep" in p for p in result.problems)
