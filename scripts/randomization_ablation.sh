#!/usr/bin/env bash
# The acquisition randomization's ablation (docs/demo_generators.md): short warm starts from the bundled
# generators, one configuration each, then each run's margin over the bundled intensity mapping on
# held-out phantoms (IXI geometry; 2 mm and blurred) and on the avg152 templates
# (scripts/real_scan_margins.py). Run from the repository root with the venv's python on PATH:
#
#   bash scripts/randomization_ablation.sh WORK SPM12_CANONICAL [CONFIG ...]
#
# WORK holds (or gets) the recipe's phantom10/ and heldout/ folders; each run goes to WORK/ablation/RUN
# with its log, and its margins to WORK/ablation/RUN/margins.json. A CONFIG is DIRECTION:NAME:TRANSFORMS
# (TRANSFORMS: "none", "all", or comma-separated names, each NAME or NAME=PROBABILITY for a strength
# sweep, the others off; DIRECTION pd-t2 or t2-pd; an optional fourth
# field, comma-separated: "plain" warm-starts the generator without the residual path, "sequences" trains
# on WORK/phantom10-sequences, the same subjects each acquired with its own TR and echo times,
# "source-sequences" on those subjects' source echo with phantom10's target, at IXI's timing). A finished
# run is skipped. The strength sweep of docs/demo_generators.md:
#
#   DIRECTION:strong-geometry:lesion,intensity_curve,bias_field,field_of_view,resolution=1,partial_volume=0.6,rician_noise,quantization
#   DIRECTION:half:lesion=0.05,intensity_curve=0.4,bias_field=0.25,field_of_view=0.15,resolution=0.25,partial_volume=0.15,rician_noise=0.25,quantization=0.1
set -euo pipefail
work=$1 templates=$2
shift 2
root=$(pwd)
epochs=${EPOCHS:-2}
seed=${SEED:+--seed $SEED}  # SEED=N: another subject split and draw of acquisitions and patches (the spread of a run)
mkdir -p "$work/ablation" && cd "$work"
[ -d phantom10 ] || python -m napari_medsynth.cli phantom phantom10 --subjects 10 --seed 0
[ -d heldout ] || python -m napari_medsynth.cli phantom heldout --subjects 10 --seed 7
bundled="$root/napari_medsynth/data/generators"
for config in "$@"; do
    IFS=: read -r direction name transforms kind <<<"$config"
    run="ablation/$direction-$name"
    residual="--residual" init="$bundled/$direction-G4+RL.pt" data=phantom10
    case ",${kind:-}," in *,plain,*) residual="" init="$bundled/$direction-G4.pt" ;; esac
    case ",${kind:-}," in *,sequences,*|*,source-sequences,*)
        [ -d phantom10-sequences ] || python -m napari_medsynth.cli phantom phantom10-sequences --subjects 10 --seed 0 \
            --varied-sequences ;;
    esac
    case ",${kind:-}," in
        *,sequences,*) data=phantom10-sequences ;;
        *,source-sequences,*) data=phantom10-sequences-$direction-source source=${direction%%-*}
            mkdir -p "$data"
            for file in phantom10/*.nii.gz; do
                name=$(basename "$file") from=phantom10
                [[ $name == *-${source^^}.nii.gz ]] && from=phantom10-sequences
                ln -sfn "$(pwd)/$from/$name" "$data/$name"
            done ;;
    esac
    randomize=""
    case $transforms in
        none) ;;
        all) randomize="--randomize" ;;
        *) randomize="--randomize --randomize-only $transforms" ;;
    esac
    if [ ! -f "$run/margins.json" ]; then
        resume=""
        [ -f "$run/last.pt" ] && resume="--resume"
        # the issue's warm start: G4, a cosine from 1e-4, the recipe's data and widths
        python -m src_train train --data "$data" --width 0.25 --batch-size 7 --all-stacks --val-stride 16 \
            --device cpu --workers 1 --reduction sum --cache ablation/cache --discriminator-width 0.25 \
            --direction "$direction" --variant G4 $residual --init "$init" --lr 1e-4 --lr-schedule cosine \
            --epochs "$epochs" --out "$run" $randomize $seed $resume >> "$run.log" 2>&1
        python "$root/scripts/real_scan_margins.py" "$work" "$run/best.pt" --templates "$templates" --subjects 3 \
            --cases "IXI geometry" "2 mm, blurred" avg152 --json "$run/margins.json" >> "$run.log" 2>&1
    fi
    echo "$run: $(python -c "import json,sys; r=json.load(open('$run/margins.json')); \
print('  '.join(f'{c}: {v[\"margin\"][0]:+.2f}' for c, v in next(iter(r.values())).items()))")"
done
