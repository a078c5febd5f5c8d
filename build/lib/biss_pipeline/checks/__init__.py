"""Asset checks. The rules behind them live in the domain layer and return a `CheckOutcome`;
`check_result` turns one into Dagster's answer."""

from dagster import AssetCheckResult, AssetCheckSeverity

from biss_pipeline.domain.verdicts import CheckOutcome


def check_result(outcome: CheckOutcome) -> AssetCheckResult:
    return AssetCheckResult(passed=outcome.passed, severity=AssetCheckSeverity(outcome.severity.value),
                            description=outcome.description or None, metadata=outcome.metadata)
