"""Run statistics of the report (scpo.reports.collect.run_stats) on hand-built records."""


def test_prediction_failures_are_counted_row_by_row():
    # Reference: hand-built records. The first has its row maximum under the predicted maximum but one
    # row above its own (★) value (prediction_excess > 0): it counts. The second is within (★) on
    # every row. The third, written before prediction_excess existed, falls back to the maxima.
    from scpo.reports.collect import run_stats

    base = {"accepted": True, "max_constraint": -0.2, "predicted_max_constraint": -0.1, "objective": 1.0, "objective_before": 1.0,
            "reason": "accepted", "solver_status": "optimal", "L_max": 1.0}
    recs = [{**base, "iteration": 1, "prediction_excess": 0.003}, {**base, "iteration": 2, "prediction_excess": -0.05},
            {**base, "iteration": 3, "max_constraint": -0.05}]
    assert run_stats(recs, projection=True)["accepted_above_prediction"] == 2
    # an unknown excess (NaN, written as the string "nan") leans the safe way: it counts as a failure;
    # "-inf" (no candidate evaluated) does not
    recs += [{**base, "iteration": 4, "prediction_excess": "nan"}, {**base, "iteration": 5, "prediction_excess": "-inf"}]
    assert run_stats(recs, projection=True)["accepted_above_prediction"] == 3
