"""Customer models: readers' churn and conversion, segments, recommendations."""
