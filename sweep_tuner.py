"""KerasTuner's side of a sweep (sweep.py): its grid oracle and the tuner whose trial is a training run.

Apart from sweep.py because subclassing KerasTuner's classes imports KerasTuner, and with it Keras:
sweep.py imports this module once its flags are read.
"""
import itertools

import backend_env  # noqa: F401  (before keras: oneDNN on, TensorFlow's start-up notices muted)
import keras_tuner as kt


class GridOracle(kt.Oracle):
    """Every combination of the grid's values, in order, each once.

    Instead of KerasTuner's GridSearchOracle, which keeps its place in the grid only in memory: a
    reloaded sweep stopped after the trials it had finished (keras-team/keras-tuner#1055). Here
    the next combination is the first one without a trial, recorded or running."""

    def populate_space(self, trial_id):
        taken = {_key(trial.hyperparameters.values) for trial in self.trials.values()}
        space = self.get_space().space
        for combination in itertools.product(*(hp.values for hp in space)):
            values = {hp.name: value for hp, value in zip(space, combination)}
            if _key(values) not in taken:
                return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": values}
        return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}


def _key(values):
    return tuple(sorted(values.items()))


class SweepTuner(kt.Tuner):
    """A KerasTuner tuner whose trial is a whole training run of the experiment script."""

    def __init__(self, sweep, **kwargs):
        self.sweep = sweep
        super().__init__(**kwargs)

    def run_trial(self, trial, *args, **kwargs):
        return self.sweep.run_trial(trial.trial_id, trial.hyperparameters.values)
