"""Errors of the pipeline layer itself (the stages define their own, see USER_ERRORS)."""


class MintlineError(Exception):
    """A problem with the user's input to the pipeline; the CLI prints it as one line, exit 2."""

    exit_code = 2


class StageConflictError(MintlineError):
    """The output location holds the results of a different run."""


# Base classes of every typed error a stage raises for bad user input. The CLI matches on
# these names (not on imported classes) so that handling an error never imports a stage.
USER_ERRORS = frozenset(
    {
        "mintline.errors.MintlineError",
        "pretrain.errors.PretrainError",
        "alignment.errors.AlignmentError",
        "annotation.errors.AnnotationError",
        "watermark.errors.WatermarkError",
        "release.errors.ReleaseError",
    }
)


def is_user_error(exc: BaseException) -> bool:
    return any(f"{cls.__module__}.{cls.__qualname__}" in USER_ERRORS for cls in type(exc).__mro__)


def exit_code_of(exc: BaseException) -> int:
    return int(getattr(exc, "exit_code", 2))
