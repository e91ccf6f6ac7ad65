"""`studio augment`: generate candidates through a teacher (followed until the job ends), `studio augment review JOB
--reviewers a,b` to open them for review, `studio augment accept CAMPAIGN` for the child version."""

from __future__ import annotations

import json
import shutil
import sys
import time

from engine.augment import gate, options
from engine.augment import job as augment_job
from engine.cli.common import EXIT_BLOCKING, EXIT_OK, UsageError
from engine.data import split, versions
from engine.jobs import event_log, supervisor
from engine.store import users


def augment_command(args) -> int:
    if args.target == "review":
        return _review(args)
    if args.target == "accept":
        return _accept(args)
    if not args.target.isdigit():
        raise UsageError("Give a dataset version id (studio versions), or 'review JOB' / 'accept CAMPAIGN'.")
    if not (args.teacher_url and args.teacher_model):
        raise UsageError("Give the teacher: --teacher-url URL --teacher-model NAME.")
    version = versions.get_version(int(args.target))
    made = next(iter(split.list_splits(version.id)), None) or split.create_split(version)
    opts = options.build(
        name=f"augment v{version.version} ({args.method})", version_id=version.id, split_id=made.id,
        method=args.method, scope=args.scope, per_record=args.per_record, count=args.count, topic=args.topic,
        language=args.language, budget_requests=args.budget_requests, budget_tokens=args.budget_tokens,
        teacher={"base_url": args.teacher_url, "model": args.teacher_model, "key_env": args.teacher_key_env,
                 "concurrency": args.concurrency})
    job = options.launch(users.SYSTEM, opts, version.project_id)
    if not args.json:
        print(f"Augmentation job {job.id} ({job.status}): {job.max_steps} tasks; stop it with `studio cancel "
              f"{job.id}`.", file=sys.stderr, flush=True)
    if args.detach:
        print(json.dumps({"job": job.id}) if args.json else f"Queued job {job.id}.")
        return EXIT_OK
    job = _follow(job.id, quiet=args.json)
    final = event_log.final_event(event_log.read_events(supervisor.run_path(job))) or {}
    if args.out and job.status in ("succeeded", "cancelled"):
        shutil.copyfile(supervisor.run_path(job) / augment_job.KEPT, args.out)
    report = {"job": job.id, "status": job.status, "error": job.error_message,
              **{k: final.get(k) for k in ("tasks", "answered", "requests", "retries", "tokens", "errors",
                                           "rejected", "candidates", "kept", "dropped", "budget_reached")}}
    if args.json:
        report["kept_candidates"] = gate.candidates(job.id) if job.status in ("succeeded", "cancelled") else []
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        dropped = ", ".join(f"{n} {r}" for r, n in (final.get("dropped") or {}).items()) or "none"
        print(f"Job {job.id} {job.status}" + (f": {job.error_message}" if job.error_message else "") +
              f". {final.get('kept', 0)} candidates kept for review of {final.get('candidates', 0)}; dropped: "
              f"{dropped}. {final.get('requests', 0)} requests ({final.get('retries', 0)} retries), "
              f"{final.get('tokens', 0)} tokens. Next: studio augment review {job.id} --reviewers NAMES")
    return EXIT_OK if job.status == "succeeded" else EXIT_BLOCKING


def _follow(job_id: int, quiet: bool):
    last = None
    try:
        while True:
            supervisor.reconcile()
            job = supervisor.get_run(job_id)
            progress = next((e for e in reversed(event_log.read_events(supervisor.run_path(job)))
                             if e["event"] == "progress"), None)
            if progress and progress.get("label") != last and not quiet:
                last = progress.get("label")
                print(last, file=sys.stderr, flush=True)
            if job.status not in supervisor.ACTIVE:
                return job
            time.sleep(0.5)
    except KeyboardInterrupt:
        supervisor.cancel(job_id)
        return supervisor.wait(job_id, timeout=supervisor.grace_seconds() + 10)


def _review(args) -> int:
    if args.ref is None or not args.reviewers:
        raise UsageError("studio augment review JOB --reviewers NAME[,NAME...]")
    names = [n.strip() for n in args.reviewers.split(",") if n.strip()]
    known = {u.name: u.id for u in users.list_users()}
    missing = [n for n in names if n not in known]
    if missing:
        raise UsageError(f"No such user: {', '.join(missing)} (add them with `studio users add`).")
    campaign = gate.open_review(users.SYSTEM, args.ref, [known[n] for n in names], args.overlap)
    print(json.dumps({"campaign": campaign.id}) if args.json else
          f"Review campaign {campaign.id} ({campaign.name}) is open in the reviewers' queues.")
    return EXIT_OK


def _accept(args) -> int:
    if args.ref is None:
        raise UsageError("studio augment accept CAMPAIGN")
    child = gate.accept(users.SYSTEM, args.ref)
    added = child.fixes[-1]["added"]
    print(json.dumps({"version": child.id, "added": added}) if args.json else
          f"Dataset version {child.id} (v{child.version}): {added} reviewed records added, with their provenance; "
          "its split keeps the parent's locked test set.")
    return EXIT_OK
