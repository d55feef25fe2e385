#!/usr/bin/env bash
# Does SPE extrapolate where absolute encodings fail? A CPU-sized version of the paper's pop-piano
# "NLL versus position" measurement, on the Bach chorales (task=music).
#
# Trains one small causal LM per positional scheme and seed on windows of LENGTH tokens, then evaluates
# all of them on the first 4 x LENGTH tokens of every test chorale (spelab.evaluate), which aggregates
# the seeds: one figure with mean ± std per position bin, one table (nll_table.md).
#   experiments/music/extrapolation.sh                  # defaults below (5 schemes x 3 seeds): README.md has the wall time
#   STEPS=400 SEEDS=0 experiments/music/extrapolation.sh   # a reduced run, one seed
# Seeds run one after the other (every scheme of seed 0 first), so a run cut short leaves whole seeds.
# Outputs: logs/sweeps/$SWEEP/... (runs) and experiments/music/results/$SWEEP/ (JSON, PNG, table).
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${PY:-.venv/bin/python}
LENGTH=${LENGTH:-64}             # training window (tokens)
EVAL_LENGTH=${EVAL_LENGTH:-$((4 * LENGTH))}
STEPS=${STEPS:-1000}
ATTENTION=${ATTENTION:-linear}   # causal linear attention (elu), the paper's setting is Performer
POS_ENCS=${POS_ENCS:-sinusoidal,learned,sinespe,convspe,rope}
SEEDS=${SEEDS:-0,1,2}
SWEEP=${SWEEP:-music_extrapolation_L${LENGTH}_s${STEPS}}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} WANDB_MODE=${WANDB_MODE:-offline}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

# model.max_len = the evaluation length: a learned table then has rows for every evaluated position,
# those beyond LENGTH never trained (what "absolute encodings for unseen positions" means);
# sinusoidal, SPE and rope need no table. convSPE's kernel spans LENGTH/2 lags (the paper: 128 of 2048).
common=(task=music attention="$ATTENTION" sweep_name="$SWEEP" logger=csv
  callbacks.progress_bar=null task.datamodule.max_length="$LENGTH" model.max_len="$EVAL_LENGTH"
  model.d_model=64 model.num_layers=2 model.num_heads=4 model.ff_dim=128
  trainer.max_steps="$STEPS" trainer.val_check_interval=$((STEPS / 4)) ckpt_every_n_steps=$((STEPS / 4)))
others=$(echo "$POS_ENCS" | tr ',' '\n' | grep -v '^convspe$' | paste -sd, -)
# One seed at a time over every scheme, so a run cut short still has complete seeds to aggregate.
for seed in $(echo "$SEEDS" | tr ',' ' '); do
  if [ -n "$others" ]; then "$PY" run.py -m "${common[@]}" seed="$seed" pos_enc="$others"; fi
  if echo "$POS_ENCS" | tr ',' '\n' | grep -qx convspe; then
    "$PY" run.py -m "${common[@]}" seed="$seed" pos_enc=convspe model.pos_enc.kernel_size=$((LENGTH / 2))
  fi
done

"$PY" -m spelab.evaluate sweep_dir="logs/sweeps/$SWEEP" max_length="$EVAL_LENGTH" \
  output_dir="experiments/music/results/$SWEEP" bin_size=$((LENGTH / 4)) batch_size=8
