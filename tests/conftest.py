"""Test setup: 4 simulated CPU devices so the data-parallel path always runs."""
import os

# Must be set before jax is first imported by any test module.
_flag = "--xla_force_host_platform_device_count=4"
if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
