"""lethe_backdoor: remove a backdoor by unlearning its target under the trigger.

A model trained on poisoned data (``badnets`` patch or ``blended`` pattern, all-to-one) obeys a
hidden trigger. Given a small, explicit budget of trigger-stamped samples, ``lethe``'s DELETE
masks the target class for each stamped sample (methods.md s.1) and SVD projects away the
activation space only stamped samples use; fine-tuning, fine-pruning, random labelling and
gradient ascent are the baselines. Metrics follow BackdoorBench: ``clean_acc``, ``asr``,
``robust_acc``. Datasets, models and the training recipe are ``lethe_vision``'s.
"""

from lethe_backdoor.attacks import ATTACKS, Attack, BadNets, Blended, attack_settings, build_attack, list_attacks
from lethe_backdoor.budget import DefenderBudget, make_budget, parse_budget
from lethe_backdoor.defences import DEFENCES, list_defences, run_defence
from lethe_backdoor.metrics import attack_rates, backdoor_metrics, evaluate_backdoor
from lethe_backdoor.poison import BackdoorSplits, make_backdoor_splits, poison_data, stamped_test

__version__ = "0.1.0"

__all__ = [
    "ATTACKS",
    "Attack",
    "BackdoorSplits",
    "BadNets",
    "Blended",
    "DEFENCES",
    "DefenderBudget",
    "attack_rates",
    "attack_settings",
    "backdoor_metrics",
    "build_attack",
    "evaluate_backdoor",
    "list_attacks",
    "list_defences",
    "make_backdoor_splits",
    "make_budget",
    "parse_budget",
    "poison_data",
    "run_defence",
    "stamped_test",
]
