"""`studio prefs build`: one preference dataset version from review campaigns and preference files."""

from __future__ import annotations


def add(sub) -> None:
    prefs = sub.add_parser("prefs", help="preference data (chosen/rejected pairs, or feedback) for DPO, ORPO and KTO")
    prefs_sub = prefs.add_subparsers(dest="prefs_command", required=True)
    build = prefs_sub.add_parser(
        "build", help="one preference dataset version from pairwise or correction campaigns and preference files, "
                      "each pair with its provenance")
    build.add_argument("--from", dest="sources", action="append", required=True, metavar="SOURCE",
                       help="campaign:ID (a pairwise or correction campaign), monitor:VERSION (production answers "
                            "with good and bad feedback to the same request) or a preference file; repeat for more")
    build.add_argument("--unpaired", action="store_true",
                       help="write unpaired feedback for KTO instead of pairs: each pair's chosen answer labelled "
                            "good and its rejected one bad, plus production answers rated one way only")
    build.add_argument("--name", default="preferences", help="the dataset's name (default: preferences)")
    build.add_argument("--project", help="the project (default: the current one)")
    build.add_argument("--json", action="store_true")
