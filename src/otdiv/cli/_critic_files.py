"""``otdiv benchmark-critics``'s files for a row: the settings that key it in ``--json``
(:func:`settings`), its critic in ``--save-critics`` (with its SHA-256, so that a resumed
row is read back only if the critic it audited is still there), and its training state
beside ``--json`` while it trains (:mod:`otdiv.audit.resume`).
"""

from __future__ import annotations

import os

from otdiv.cli._common import CLIError
from otdiv.cli._critic_problems import hidden_for


def settings(label: str, constraint: str, seed: int, args, toy) -> dict:
    """What decides a row's numbers (the device aside): the problem, constraint and seed,
    the training settings (or the checkpoint audited: its absolute path and SHA-256), λ,
    the audit's sizes and, for a toy without a closed form, the reference's. A row of
    ``--json`` whose recorded settings equal these is not run again."""
    lam = args.lambda_gp if constraint in ("gp", "lp") else None
    common = {"problem": label, "constraint": constraint, "seed": seed, "lambda_gp": lam,
              "n": args.n, "n_estimate": args.n_estimate, "population": args.population,
              "reference_n": None if toy.w1 is not None else args.reference_n,
              "reference_repeats": None if toy.w1 is not None or not args.reference_n
              else args.reference_repeats}
    if args.load_critics:
        path = os.path.abspath(critic_path(args.load_critics, label, constraint, seed))
        return {**common, "critic": path, "critic_sha256": sha256(path)}
    from otdiv.audit.optimizers import recipe_optimizer

    optimizer = (recipe_optimizer(constraint) if args.optimizer == "auto" or constraint == "clip"
                 else args.optimizer)
    return {**common, "steps": args.steps, "batch_size": args.batch_size,
            "penalty_batch": (args.penalty_batch or args.batch_size)
            if constraint in ("gp", "lp") else None,
            "hidden": list(hidden_for(args.hidden, toy.dim)),
            "softplus_beta": args.softplus_beta or None,
            "lr": 5e-5 if constraint == "clip" else args.lr, "optimizer": optimizer,
            "schedule": args.schedule,
            # float32 rows carry no key: the rows written before --precision stay reusable
            **({"precision": args.precision} if args.precision != "float32" else {})}


def sha256(path: str) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    import hashlib
    from pathlib import Path

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def reusable(record: dict, chosen: dict, args) -> bool:
    """A row read back (its settings ``chosen``) stays valid for ``--save-critics DIR``
    only if DIR holds the critic it audited (the SHA-256 recorded when it was saved); else
    it is trained again."""
    if not args.save_critics:
        return True
    path = critic_path(args.save_critics, chosen["problem"], chosen["constraint"],
                       chosen["seed"], chosen.get("precision"))
    return os.path.exists(path) and record.get("saved_critic_sha256") == sha256(path)


def critic_path(folder: str, label: str, constraint: str, seed: int,
                precision: str | None = None) -> str:
    """Where --save-critics puts a row's critic and --load-critics finds it (a bfloat16
    row's with a suffix of its own, so that the two precisions do not overwrite each
    other's)."""
    tag = "" if precision in (None, "float32") else f"_{precision}"
    name = f"{label.replace(' ', '_').replace('=', '')}_{constraint}_s{seed}{tag}.pt"
    return os.path.join(folder, name)


def state_path(json_path: str, chosen: dict, device: str) -> str:
    """Where --json keeps a row's training state while it trains (otdiv.audit.resume): a
    folder beside the file, one state per row's settings and device type (a GPU's
    generator state does not fit a CPU's)."""
    import hashlib
    import json

    from otdiv.audit.models import resolve_device

    text = json.dumps({**chosen, "device": resolve_device(device).type}, sort_keys=True)
    digest = hashlib.sha1(text.encode()).hexdigest()[:16]
    return os.path.join(f"{json_path}.training", f"{digest}.pt")


def drop_state(path: str) -> None:
    """The row and its critic are written: its training state goes. The folder stays (a
    run sharing --json may be about to write its own state there)."""
    try:
        os.unlink(path)
    except OSError:  # already gone
        pass


def save(critic, record: dict, args) -> None:
    """--save-critics: the row's critic in DIR (:mod:`otdiv.audit.checkpoint`), its SHA-256
    in the record (what :func:`reusable` checks on resume)."""
    from otdiv.audit.checkpoint import save_critic

    path = critic_path(args.save_critics, record["problem"], record["constraint"],
                       record["seed"], record.get("precision"))
    try:
        save_critic(critic, path)
    except OSError as exc:
        raise CLIError(f"--save-critics: cannot save the critic of {record['problem']}, "
                       f"{record['constraint']}, seed {record['seed']} to {path}: "
                       f"{exc.strerror or exc}; its row is kept") from None
    record["saved_critic_sha256"] = sha256(path)


def write(records: list[dict], args) -> None:
    """--json: this run's rows merged into the file (:func:`otdiv.cli._rows.write_rows`),
    after every row; the file's rows of other settings stay."""
    if args.json:
        from otdiv.cli._rows import write_rows

        write_rows(args.json, records)
