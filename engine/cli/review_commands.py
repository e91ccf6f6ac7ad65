"""`studio review` (campaigns, results, export) and `studio ab analyze` (production A/B logs)."""

from __future__ import annotations

import json
import sys

from engine.cli.common import EXIT_OK, UsageError
from engine.models import registry
from engine.review import ab_traffic, campaigns, corrections, ratings_export, stats
from engine.store import projects, users


def review_command(args) -> int:
    if args.review_command == "create":
        names = [n.strip() for n in args.reviewers.split(",") if n.strip()]
        known = {u.name: u.id for u in users.list_users()}
        missing = [n for n in names if n not in known]
        if missing:
            raise UsageError(f"No such user: {', '.join(missing)} (add them with `studio users add`).")
        made = campaigns.create_campaign(users.SYSTEM, args.run, args.kind, [known[n] for n in names], args.sample,
                                      args.overlap, args.baseline, args.name, args.per_criterion,
                                      campaigns.parse_gold(args.gold, args.kind), args.seed)
        total = sum(p["total"] for p in campaigns.progress(users.SYSTEM, made.id))
        print(f"Campaign {made.id} created: {total} items across {len(names)} reviewers.")
        return EXIT_OK
    if args.review_command == "results" and campaigns.get_campaign(args.campaign).kind == campaigns.CORRECTION:
        summary = corrections.summary(users.SYSTEM, args.campaign)
        print(json.dumps(summary, indent=2) if args.json else
              f"Campaign {args.campaign}: {summary['corrected']} of {summary['items']} answers corrected (they go "
              "into the model's retraining data).")
        return EXIT_OK
    if args.review_command == "results":
        result = stats.campaign_results(users.SYSTEM, args.campaign)
        if args.json:
            print(json.dumps(result, indent=2, default=str))
        elif result["kind"] == "pairwise":
            print(result["verdict"])
            if result["n"]:
                print(f"  {result['wins']} wins, {result['losses']} losses, {result['ties']} ties, "
                      f"{result['both_bad']} both bad; sign test p = {result['sign_test_p']}")
        else:
            print(f"{result['n_ratings']} ratings from {len(result['reviewers'])} reviewers.")
            for c, e in result["criteria"].items():
                b, f = e["models"]["base"], e["models"]["finetuned"]
                if b["mean"] is None or f["mean"] is None:
                    continue
                paired = e["paired"]
                diff = "" if paired["mean_diff"] is None else (
                    f"; on the {paired['n']} examples both were rated on: base {paired['base_mean']:.2f}, "
                    f"fine-tuned {paired['finetuned_mean']:.2f}, paired diff {paired['mean_diff']:+.2f}")
                print(f"  {c:<12} base {b['mean']:.2f} [{b['ci_low']:.2f}, {b['ci_high']:.2f}]  fine-tuned "
                      f"{f['mean']:.2f} [{f['ci_low']:.2f}, {f['ci_high']:.2f}]{diff}; agreement: {e['agreement']}")
        return EXIT_OK
    text = ratings_export.export(users.SYSTEM, args.campaign, args.format)
    if args.out:
        args.out.write_text(text, encoding="utf-8", newline="")
        print(f"Wrote {args.out}.")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def ab_command(args) -> int:
    result = ab_traffic.analyze(args.log, args.split, args.treatment, args.primary,
                                ab_traffic.parse_mapping(args.mapping))
    if args.model_version:  # the decision joins the version's lineage (and its model card)
        version = registry.record_ab_decision(users.SYSTEM, args.model_version, dict(result))
        print(f"Recorded the decision ({result['decision']}) in {version.label}'s lineage.", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return EXIT_OK
    n, s = result["n"], result["srm"]
    print(f"Users: control {n['control']:,}, treatment {n['treatment']:,} (planned {s['expected_share']:.0%} "
          f"treatment, observed {s['observed_share']:.2%}; sample-ratio p = {ab_traffic.p_text(s['p_value'])}"
          f"{', MISMATCH' if s['alert'] else ''}).")
    for name, m in result["metrics"].items():
        lift = f"{m['relative_lift']:+.1%}" if m["relative_lift"] is not None else "n/a"
        print(f"  {name:<14} control {m['control']:.4g}  treatment {m['treatment']:.4g}  diff {m['diff']:+.4g} "
              f"[{m['ci_low']:+.4g}, {m['ci_high']:+.4g}]  lift {lift}  p {ab_traffic.p_text(m['p_value'])}")
    issues = result["data_issues"]
    if issues["duplicate_rows_dropped"] or issues["users_in_both_variants"]:
        print(f"Data issues: {issues['duplicate_rows_dropped']:,} exact duplicate rows dropped; "
              f"{issues['users_in_both_variants']:,} users in both variants left out "
              f"({issues['rows_of_those_users_excluded']:,} rows).")
    print(f"Decision: {result['decision']}.")
    for r in result["reasons"]:
        print(f"  - {r}")
    return EXIT_OK


def prefs_command(args) -> int:
    """studio prefs build: one preference dataset version from campaigns and files."""
    from engine.monitor import preference_pairs  # the last stage gathers every source, production logs included

    result = preference_pairs.build(users.SYSTEM, projects.ensure_project(args.project).id, args.sources, args.name,
                                    unpaired=args.unpaired)
    print(json.dumps(result.to_json(), indent=2) if args.json else result.summary())
    return EXIT_OK
