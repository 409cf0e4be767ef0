"""The workload model: ramp stages, custom shapes and open-model arrival schedules (pure logic)."""
