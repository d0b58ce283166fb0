"""Where the repository is: the default datasets/, saved_models/ and images/ folders lie under it."""
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parent
