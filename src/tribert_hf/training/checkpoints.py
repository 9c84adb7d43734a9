"""Training checkpoints (`accelerator.save_state` folders `output_dir/checkpoints/step-N`): written atomically, the
latest found again to resume."""

import os
import shutil


def atomic_save_state(accelerator, output_dir, step, limit):
    checkpoints = os.path.join(output_dir, "checkpoints")
    final, tmp = os.path.join(checkpoints, f"step-{step}"), os.path.join(checkpoints, f".tmp-step-{step}")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)  # a checkpoint appears under its final name only once complete
        steps = sorted(int(n.split("-")[1]) for n in os.listdir(checkpoints) if n.startswith("step-"))
        for old in steps[:-limit]:
            shutil.rmtree(os.path.join(checkpoints, f"step-{old}"), ignore_errors=True)
    accelerator.wait_for_everyone()


def latest_checkpoint(output_dir):
    checkpoints = os.path.join(output_dir, "checkpoints")
    steps = sorted(int(n.split("-")[1]) for n in os.listdir(checkpoints) if n.startswith("step-")) if os.path.isdir(checkpoints) else []
    return (os.path.join(checkpoints, f"step-{steps[-1]}"), steps[-1]) if steps else (None, 0)
