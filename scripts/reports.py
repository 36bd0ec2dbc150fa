"""The command line's text reports: what a model run, a check and a round did, printed for a person."""

from __future__ import annotations

from pathlib import Path


def print_dataset(dataset) -> None:
    counts = dataset.count_sample_tags()
    splits = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"Dataset {dataset.name!r}: {len(dataset)} samples ({splits}), {len(dataset.default_classes)} classes: "
          f"{', '.join(dataset.default_classes[:12])}{' ...' if len(dataset.default_classes) > 12 else ''}")


def print_model(summary) -> None:
    from active_learning.model.recipes import recipe_note
    from active_learning.model.trust import model_trust

    if summary.split == "predictions":
        print(f"Model outputs ({summary.run_key}): {summary.num_scored} samples from {summary.source}")
    else:
        print(f"Model outputs ({summary.run_key}, recipe {summary.recipe}): {summary.num_scored} samples scored "
              f"out-of-sample ({summary.source}) on {summary.device} in {summary.seconds:.0f} s")
        if recipe_note(summary.recipe):
            print(f"  {recipe_note(summary.recipe)}")
    if summary.num_unlabeled_skipped:
        print(f"  {summary.num_unlabeled_skipped} samples without a label were skipped.")
    if summary.split == "predictions":
        print("  accuracy of the given predictions against the labels: "
              f"{summary.out_of_sample_accuracy:.3f}")
    else:
        print(f"  out-of-sample accuracy: {summary.out_of_sample_accuracy:.3f}")
    print(f"  {model_trust(summary.out_of_sample_accuracy).message}")
    if summary.test_accuracy is not None:
        print(f"  test accuracy (final model, {summary.num_test} test samples): {summary.test_accuracy:.3f}")
    if summary.checkpoint:
        print(f"  checkpoint: {summary.checkpoint} (sha256 {summary.checkpoint_sha256[:12]}...)")


def print_check(result) -> None:
    summary = result.summary
    if result.check == "class_balance":
        counts = summary["counts"]
        width = max(len(c) for c in counts)
        top = max(counts.values()) or 1
        print(f"Class balance: {summary['num_labeled']} labeled, imbalance ratio {summary['imbalance_ratio']:.2f}")
        for name, count in counts.items():
            print(f"  {name:<{width}} {count:>7}  {'#' * max(1, round(30 * count / top))}")
        if summary["rare_classes"]:
            print(f"  rare classes (< 20% of the largest): {', '.join(summary['rare_classes'])}")
    elif result.check == "label_errors":
        print(f"Label errors: {summary['num_scored']} labeled samples scored (cleanlab {summary['filter_by']}, "
              f"ranked by {summary['rank_method']}).")
        print_flag_count(summary)
        from curation_checks.label_issues import noise_pairs_table

        pairs = noise_pairs_table(summary)
        if pairs:
            print("  Most frequent given -> suggested: " + ", ".join(f"{g} -> {s} ({c})" for g, s, c in pairs[:6]))
    else:
        shown = {k: v for k, v in summary.items() if not isinstance(v, (list, dict))}
        print(f"{result.check}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))


def print_flag_count(errors: dict) -> None:
    """The flag count and the trust verdict: below the bar the flags are not called likely label errors."""
    from active_learning.model.trust import TrustVerdict

    scored = max(errors["num_scored"], 1)
    share = f"{errors['num_issues']} ({100 * errors['num_issues'] / scored:.1f}%)"
    verdict = TrustVerdict.from_dict(errors.get("trust"))
    if verdict is not None and not verdict.trusted:
        print(f"  {verdict.message}")
        print("  (here: --recipe photo --device cuda, --backbone ARCH --weights FILE, --embeddings-field F, or "
              "--predictions-field F)")
        print(f"  Flagged (the model disagrees with the given label; NOT likely label errors at this accuracy): "
              f"{share}")
        return
    print(f"  Likely label errors: {share}")
    if verdict is not None:
        print(f"  {verdict.message}")


def stored_source(dataset_name: str) -> str:
    """How the reused probabilities were made, in words, from the dataset's model run."""
    import fiftyone as fo

    from active_learning.model.model_run import load_model_run

    run = load_model_run(fo.load_dataset(dataset_name))
    if run is None:
        return "existing out-of-sample probabilities"
    if not run.out_of_sample:
        return f"existing probabilities, {run.probabilities}"
    return f"existing out-of-sample probabilities ({run.probabilities})"


def print_label_issues(dataset_name: str, report, top: int) -> None:
    from curation_checks.label_issues import noise_pairs_table

    errors = report.results["label_errors"].summary
    scored = errors["num_scored"]
    source = (f"out-of-sample probabilities ({report.model.source}), computed in {report.model.seconds:.0f} s"
              if report.model else stored_source(dataset_name))
    print(f"Label issues in {dataset_name!r}: {scored} labeled samples scored ({source}; cleanlab "
          f"{errors['filter_by']}, ranked by {errors['rank_method']}).")
    if errors["num_unlabeled_skipped"]:
        print(f"  {errors['num_unlabeled_skipped']} samples without a label were skipped.")
    first = getattr(report, "first_pass", None)
    if first is not None and report.model is not None:
        print(f"  Second pass: retrained without the {first.num_flagged:,} samples the first pass flagged; "
              f"agreement with the given labels {first.out_of_sample_accuracy:.3f} -> "
              f"{report.model.out_of_sample_accuracy:.3f}.")
    print_flag_count(errors)
    pairs = noise_pairs_table(errors)
    if pairs:
        print("  Most frequent given -> suggested: " + ", ".join(f"{g} -> {s} ({c})" for g, s, c in pairs[:6]))
    if report.suspects:
        print(f"  Worst {min(top, len(report.suspects))} by label quality (* = flagged as a likely error):")
        width = max(8, *(len(x.given) for x in report.suspects), *(len(x.suggested) for x in report.suspects))
        print(f"    {'rank':>5} {'score':>7} {'flag':>4}  {'given':<{width}} {'suggested':<{width}} file")
        for suspect in report.suspects[:top]:
            print(f"    {suspect.rank:>5} {suspect.score:>7.4f} {'*' if suspect.flagged else '':>4}  "
                  f"{suspect.given:<{width}} {suspect.suggested:<{width}} {Path(suspect.filepath).name}")
    if report.skipped:
        print(f"  Skipped {', '.join(report.skipped)}: the samples have no embeddings (your predictions came "
              "without them; give --embeddings-field or use the fixed model).")
    else:
        print_duplicates(report)
    print("  Fields: label_issue_{score,flag,suggested,rank,confidence}, near_duplicate_*, outlier_*; review them in "
          "the App's 'Label issues' panel.")


def print_duplicates(report) -> None:
    dups = report.results["near_duplicates"].summary
    outliers = report.results["outliers"].summary
    print(f"  Near-duplicates: {dups['num_flagged']} samples in {dups['num_groups']} groups "
          f"(largest {dups.get('largest_group', 0)}); outliers: {outliers['num_flagged']}.")
    if dups.get("num_large_groups"):
        print(f"  Warning: {dups['num_large_groups']} near-duplicate groups hold more than "
              f"{dups['large_group_size']} images: the embeddings may be too coarse to tell images apart; look "
              "before deleting anything.")


def print_round(state, dataset_name: str, project_url: str) -> None:
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in state.timings.items())
    print(f"Round {state.index} ({state.strategy}): step {state.step}; {len(state.selected)} selected"
          f"{f' + {len(state.review)} from the review queue' if state.review else ''}; "
          f"{state.with_prediction}/{len(state.task_ids)} tasks pre-annotated"
          f"{f' by {state.predictions_from}' if state.predictions_from else ' (no model yet)'}; "
          f"{state.annotated} annotated, {len(state.skipped)} skipped.")
    if state.push_note:
        print(f"  note: {state.push_note}")
    if state.step == "annotate":
        open_tasks = len(state.task_ids) - state.annotated - len(state.skipped)
        print(f"  Waiting for {open_tasks} annotations in Label Studio: {project_url}")
        print(f"  Resume with `curation al round {dataset_name}` (add --wait to poll), or ingest what is done with "
              f"`curation al ingest {dataset_name}`.")
    if state.step == "done":
        back = f"; {len(state.skipped)} skipped samples went back to the pool" if state.skipped else ""
        print(f"  {state.num_labeled} labels, test accuracy {state.accuracy:.4f}{back}; {timings}")
        worst = sorted(state.per_class_f1.items(), key=lambda item: item[1])[:3]
        print("  lowest per-class F1: " + ", ".join(f"{c} {f:.3f}" for c, f in worst))


def print_round_status(state, progress) -> None:
    """One line of `curation al status`: the round's step, its tasks and the model's accuracy."""
    accuracy = f"{state.accuracy:.4f}" if state.accuracy is not None else "-"
    print(f"  round {state.index:>3}  {state.strategy:<16} {state.step:<9} pushed {progress.pushed:>4}  "
          f"annotated {progress.annotated:>4}  skipped {progress.skipped:>3}  ingested {progress.ingested:>4}  "
          f"pre-annotated {progress.with_prediction:>4}  trained on {state.num_labeled if state.step == 'done' else '-':>6}  "
          f"accuracy {accuracy}")