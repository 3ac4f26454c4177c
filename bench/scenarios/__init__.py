"""The six scenarios of issue 4; each runs the gateway and the baselines and records StepResults."""
