"""Running the model: the train and test loops, the launcher, the `fcos` command and its
front door (`defaults.py`), the predictor, the quickstart and the GPU check."""
