"""Running sweeps: the only package of coe-sweep that imports ray.

    driver.py     launch(spec): the Tune experiments of one launch, start to finish
    searchers.py  Optuna over feasible configs, and grid search
    callback.py   the driver-side Tune callback: sweep store, MLflow, progress per trial
    ledger.py     the driver's books (finished / running / rejected trials) and the stop policy
    resume.py     finished trials of earlier launches, from the result records and MLflow
    runtime.py    Ray start-up and shutdown, slots, signals
    store.py      the sweep's own directory: lock, result records, trial journal
    progress.py   live progress (also rebuilt from MLflow by `coe-sweep status`)
    outcome.py    what launch returns, and its summary tables
    logged.py     a trial's MLflow params and tags

Nothing is imported here, so that `coe-sweep status` (progress.py) does not pay for importing ray.
"""
