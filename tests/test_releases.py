"""Releases (issue 16, part 3 and the guards of part 5): a new version gets a share of new runs against the stable
one, routed by a key; promoted or rolled back by a person, rolled back by itself when `rollback_when` holds. Real
runs on real SQLite stores; the only model is the public scripted one."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import lane as lane_api
from conftest import lane, lane_json, write_project
from lane.errors import ProjectInvalid, UsageError

FILES = {
    "lane.yaml": """
        project: shop
        models: {default: scripted:model.yaml}
        roles: {lead: {kind: human}}
        toolsets:
          desk: {python: tools/desk.py}
    """,
    "model.yaml": "{}\n",
    "tools/desk.py": """
        from lane import tool

        @tool(effect="read", idempotent=True)
        def answer(customer: str, version: int) -> str:
            '''Answer a customer.'''
            return f"v{version} answered {customer}"
    """,
    "runbooks/care.yaml": """
        runbook: care
        version: 1
        approver: lead
        inputs: {type: object, properties: {customer: {type: string}}, required: [customer]}
        steps:
          - {id: answer, tool: desk.answer, args: {customer: "${{ inputs.customer }}", version: 1}}
        kpis:
          answered: {value: "steps.answer.status == 'completed'"}
    """,
}


def v2(release: str = "", *, extra_step: str = "", number: int = 2) -> str:
    return f"""
runbook: care
version: {number}
approver: lead
inputs: {{type: object, properties: {{customer: {{type: string}}}}, required: [customer]}}
steps:
{extra_step}  - {{id: answer, tool: desk.answer, args: {{customer: "${{{{ inputs.customer }}}}", version: {number}}}}}
kpis:
  answered: {{value: "steps.answer.status == 'completed'"}}
{release}"""


def shop(tmp_path: Path) -> Path:
    root = write_project(tmp_path / "shop", FILES)
    with lane_api.Project.load(root) as project:
        assert project.run("care", {"customer": "first"}).status == "completed"  # v1 has a run: it is kept
    return root


def routing_of(project: lane_api.Project, run_id: str) -> dict[str, Any]:
    started = project.store.events(run_id)[0]
    assert started.type == "run_started"
    return dict(started.data.get("routing") or {})


def test_release_in_the_runbook_routes_a_share_by_key_stable_per_key_over_2000_runs(tmp_path: Path) -> None:
    root = shop(tmp_path)
    (root / "runbooks" / "care.yaml").write_text(v2("release: {share: 20%, key: inputs.customer}\n"))
    seen: dict[str, set[int]] = {}
    with lane_api.Project.load(root) as project:
        for i in range(2000):
            customer = f"c{i % 400}"  # 400 customers, 5 runs each
            run = project.run("care", {"customer": customer})
            assert run.status == "completed"
            routing = routing_of(project, run.run_id)
            assert routing["candidate"] == 2 and routing["stable"] == 1 and routing["key"] == "inputs.customer"
            record = project.store.run(run.run_id)
            assert record.version == routing["version"]
            assert project.output(run.run_id) == f"v{record.version} answered {customer}"  # it ran that version's steps
            seen.setdefault(customer, set()).add(record.version)
        status = project.release_status("care")
    assert all(len(versions) == 1 for versions in seen.values()), "a customer moved between versions"
    on_v2 = sum(versions == {2} for versions in seen.values()) / len(seen)
    assert 0.14 <= on_v2 <= 0.26, on_v2  # 400 keys at 20%: 3 standard deviations is 0.06
    assert status["candidate"]["version"] == 2 and status["candidate"]["share"] == 0.2 and status["stable"]["version"] == 1
    assert status["log"][0]["type"] == "released" and status["log"][0]["data"]["from"] == "runbook"


def test_routing_by_run_id_is_within_tolerance_and_a_wider_share_keeps_each_key_on_the_new_version(tmp_path: Path) -> None:
    root = shop(tmp_path)
    (root / "runbooks" / "care.yaml").write_text(v2())
    out = lane_json("release", "care", "2", "--share", "10%", "--by", "ann", cwd=root)
    assert out["candidate"]["share"] == 0.1 and out["candidate"]["stable"]["version"] == 1
    with lane_api.Project.load(root) as project:
        versions = Counter(project.store.run(project.run("care", {"customer": "x"}).run_id).version for _ in range(2000))
        assert 0.08 <= versions[2] / 2000 <= 0.12, versions  # 3 standard deviations of 2,000 draws at 10%: 0.02
    # routed by key: a key on v2 at 10% stays on v2 at 50%
    with lane_api.Project.load(root) as project:
        project.release("care", 2, share=0.1, key="inputs.customer")
        before = {f"k{i}": project.store.run(project.run("care", {"customer": f"k{i}"}).run_id).version for i in range(300)}
        project.release("care", 2, share=0.5)
        after = {f"k{i}": project.store.run(project.run("care", {"customer": f"k{i}"}).run_id).version for i in range(300)}
    assert all(after[k] == 2 for k, v in before.items() if v == 2)
    assert sum(v == 2 for v in after.values()) > sum(v == 2 for v in before.values())


def test_promote_and_rollback_by_a_person_are_journaled_and_route_every_new_run(tmp_path: Path) -> None:
    root = shop(tmp_path)
    (root / "runbooks" / "care.yaml").write_text(v2())
    lane_json("release", "care", "2", "--share", "50%", cwd=root)
    promoted = lane_json("promote", "care", "--by", "ann", "--kill-date", "2027-01-31", "--sunset", "v1 gets no runs for 14 days", cwd=root)
    assert promoted["stable"]["version"] == 2 and promoted["candidate"] is None
    assert promoted["kill_dates"]["1"] == {"kill_date": "2027-01-31", "sunset": "v1 gets no runs for 14 days", "by": "ann"}
    with lane_api.Project.load(root) as project:
        assert {project.store.run(project.run("care", {"customer": f"p{i}"}).run_id).version for i in range(20)} == {2}
    back = lane_json("rollback", "care", "--reason", "answers too long", "--by", "ann", cwd=root)  # undoes the promotion
    assert back["stable"]["version"] == 1 and back["rolled_back"] == {"2": "answers too long"}
    with lane_api.Project.load(root) as project:
        runs = [project.run("care", {"customer": f"r{i}"}) for i in range(20)]
        assert {project.store.run(r.run_id).version for r in runs} == {1}
        assert routing_of(project, runs[0].run_id)["rolled_back"] == 2
    refused = lane("release", "care", "2", cwd=root)
    assert refused.returncode == 2 and "was rolled back" in refused.stderr and "raise `version:`" in refused.stderr
    shown = lane("release", "care", cwd=root)
    assert shown.returncode == 0 and "v2 rolled back: answers too long" in shown.stdout
    kinds = [e["type"] for e in lane_json("release", "care", cwd=root)["log"]]
    assert kinds == ["released", "promoted", "rolled_back"]


def test_rollback_when_fires_by_itself_once_on_injected_failures(tmp_path: Path) -> None:
    root = shop(tmp_path)
    failing = "  - {id: gate, check: [python3, -c, 'import sys; sys.exit(1)']}\n"  # v2 fails every run
    (root / "runbooks" / "care.yaml").write_text(v2("release: {share: 50%, rollback_when: 'failed_share > 0.05 and n >= 5'}\n", extra_step=failing))
    with lane_api.Project.load(root) as project:
        runs = [project.run("care", {"customer": f"c{i}"}) for i in range(40)]
        on_v2 = [r for r in runs if project.store.run(r.run_id).version == 2]
        status = project.release_status("care")
    assert all(r.status == "failed" for r in on_v2)
    assert len(on_v2) == 5, "v2 took runs after its rollback, or was rolled back before n >= 5"
    rolled = [e for e in status["log"] if e["type"] == "rolled_back"]
    assert len(rolled) == 1 and rolled[0]["data"]["automatic"] is True and "failed_share=1.00" in rolled[0]["data"]["reason"]
    assert status["candidate"] is None and "2" in status["rolled_back"]
    assert all(r.status == "completed" for r in runs if r not in on_v2)


def test_promote_when_proposes_once_and_never_promotes(tmp_path: Path) -> None:
    root = shop(tmp_path)
    (root / "runbooks" / "care.yaml").write_text(v2("release: {share: 50%, promote_when: 'n >= 3 and kpis.answered >= stable.kpis.answered'}\n"))
    with lane_api.Project.load(root) as project:
        for i in range(30):
            project.run("care", {"customer": f"c{i}"})
        status = project.release_status("care")
    proposals = [e for e in status["log"] if e["type"] == "promotion_proposed"]
    assert len(proposals) == 1 and proposals[0]["data"]["to"] == "lead" and "lane promote care" in proposals[0]["data"]["reason"]
    assert status["candidate"]["version"] == 2 and status["stable"]["version"] == 1  # still a release: a person promotes
    assert status["figures"]["kpis"]["answered"] == 1.0 and status["figures"]["stable"]["n"] > 0


def test_a_release_needs_its_fixtures_to_pass(tmp_path: Path) -> None:
    root = shop(tmp_path)
    (root / "runbooks" / "care.yaml").write_text(v2())
    write_project(root, {"fixtures/care/ok.yaml": """
        inputs: {customer: ann}
        expect: {status: completed, steps: {answer: {output: "v2 answered ann"}}}
    """})
    (root / "fixtures" / "care" / "bad.yaml").write_text("inputs: {customer: bob}\nexpect: {steps: {answer: {output: v1 answered bob}}}\n")
    refused = lane("release", "care", "2", "--share", "20%", cwd=root)
    assert refused.returncode == 2 and "1 of its 2 fixtures failed (bad)" in refused.stderr, refused.stderr
    assert lane_json("release", "care", cwd=root)["candidate"] is None
    (root / "fixtures" / "care" / "bad.yaml").unlink()
    assert lane_json("release", "care", "2", "--share", "20%", cwd=root)["candidate"]["share"] == 0.2


def test_a_release_in_the_runbook_waits_for_lane_test_on_its_version(tmp_path: Path) -> None:
    root = shop(tmp_path)
    (root / "runbooks" / "care.yaml").write_text(v2("release: {share: 20%}\n"))
    write_project(root, {"fixtures/care/ok.yaml": "inputs: {customer: ann}\nexpect: {status: completed}\n"})
    refused = lane("run", "care", "--input", "customer=zed", cwd=root)
    assert refused.returncode == 2 and "run `lane test care`" in refused.stderr
    assert lane("test", "care", cwd=root).returncode == 0
    assert lane("run", "care", "--input", "customer=zed", cwd=root).returncode == 0


def test_a_run_paused_on_the_new_version_resumes_on_it_after_a_rollback(tmp_path: Path) -> None:
    root = shop(tmp_path)
    ask = "  - {id: ok, human: lead, prompt: Go?, approve: yes}\n"
    (root / "runbooks" / "care.yaml").write_text(v2("release: {share: 100%}\n", extra_step=ask))
    with lane_api.Project.load(root) as project:
        run = project.run("care", {"customer": "ann"})
        assert run.status == "paused" and project.store.run(run.run_id).version == 2
        project.rollback("care", by="ann")
        run.approve(as_role="lead")
        done = run.resume()
        assert done.status == "completed" and done.output == "v2 answered ann"
        assert [e.type for e in project.store.events(run.run_id)].count("run_started") == 1
        assert project.store.run(project.run("care", {"customer": "bob"}).run_id).version == 1


@pytest.mark.parametrize(("release", "message"), [
    ("release: {key: steps.answer.output}\n", "unknown name 'steps' in key"),
    ("release: {key: run.status}\n", "run.id only"),
    ("release: {rollback_when: 'kpis.nope > 1'}\n", "kpis.nope, which the runbook does not declare"),
    ("release: {promote_when: 'failures > 1'}\n", "unknown name 'failures' in promote_when"),
    ("release: {share: 120%}\n", "a share is between 0% and 100%"),
])
def test_validate_says_what_is_wrong_in_a_release_block(tmp_path: Path, release: str, message: str) -> None:
    root = shop(tmp_path)
    (root / "runbooks" / "care.yaml").write_text(v2(release))
    with pytest.raises(ProjectInvalid) as raised:
        lane_api.Project.load(root)
    assert message in str(raised.value), str(raised.value)
    checked = lane("validate", cwd=root)
    assert checked.returncode != 0 and "runbooks/care.yaml:" in checked.stdout + checked.stderr


def test_release_errors_say_how_to_fix_them(tmp_path: Path) -> None:
    root = shop(tmp_path)
    with lane_api.Project.load(root) as project:
        with pytest.raises(UsageError, match="no earlier version with runs"):
            project.release("care", 1)
        with pytest.raises(UsageError, match="not v3"):
            project.release("care", 3)
        with pytest.raises(UsageError, match="no release of care is open"):
            project.promote("care")
        with pytest.raises(UsageError, match="no open release and no promotion"):
            project.rollback("care")
    bad = lane("release", "care", "2", "--share", "lots", cwd=root)
    assert bad.returncode == 2 and "--share 'lots'" in bad.stderr and "Traceback" not in bad.stderr
    (root / "runbooks" / "care.yaml").write_text(v2())
    bad = lane("release", "care", "2", "--key", "steps.x", cwd=root)
    assert bad.returncode == 2 and "routing key reads the inputs" in bad.stderr
    assert json.loads(lane("release", "care", "--json", cwd=root).stdout)["candidate"] is None


def test_a_runbook_file_older_than_the_stable_version_is_refused(tmp_path: Path) -> None:
    root = shop(tmp_path)
    (root / "runbooks" / "care.yaml").write_text(v2())
    lane_json("release", "care", "2", "--share", "50%", cwd=root)
    lane_json("promote", "care", cwd=root)
    (root / "runbooks" / "care.yaml").write_text(v2(number=1))  # an old checkout of the file
    old = lane("run", "care", "--input", "customer=ann", cwd=root)
    assert old.returncode == 2 and "older than v2, the stable version" in old.stderr
    assert lane_json("release", "care", cwd=root)["stable"]["version"] == 2  # nothing changed


def test_a_run_is_not_written_when_its_release_changed_after_it_was_routed(tmp_path: Path) -> None:
    """Routing reads the release journal; the run is written only if no entry came since (a rollback, say)."""
    from lane.store.records import ReleaseMoved

    root = shop(tmp_path)
    (root / "runbooks" / "care.yaml").write_text(v2())
    lane_json("release", "care", "2", "--share", "50%", cwd=root)
    with lane_api.Project.load(root) as project:
        store = project.store
        seq = store.release_log("care")[-1]["seq"]
        store.append_release("care", "rolled_back", {"version": 2, "snapshot": "x", "reason": "test"}, after=seq)
        with pytest.raises(ReleaseMoved):
            store.create_run("r0", "care", 2, {"customer": "a"}, "me", routed_at=seq)
        with pytest.raises(Exception, match="r0|no run"):
            store.run("r0")  # nothing was written
        run = project.run("care", {"customer": "b"})
        assert project.store.run(run.run_id).version == 1  # routed again, after the rollback
