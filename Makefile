# dmabench: a plain Makefile. `make` builds build/dmabench; `make test` runs every
# test; `make run` runs the main job. CUDA parts build when nvcc is found
# (`make CUDA=0` turns them off; CUDA_ARCH picks the targets).

CC      ?= gcc
ifeq ($(origin CC),default)
CC      := gcc
endif
BUILD   := build
CFLAGS  ?= -O2 -g
# no -march: the hot kernels carry AVX-512, AVX2 and portable clones (simd.h), so
# one binary runs on any x86-64 machine, the GPU hosts included
CFLAGS  += -ffp-contract=fast -Wno-psabi
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fopenmp
CFLAGS  += -Ikernels/common -Ikernels/dma -Ibaselines/mha -Ibaselines/swa -Ibaselines/nsa \
           -Imodel -Itasks -Iharness -I$(BUILD)/gen
LDLIBS  := -fopenmp -lcjson -lcurl -lopenblas -lm

# ---- CUDA detection ----
NVCC ?= $(shell command -v nvcc 2>/dev/null || (test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc))
CUDA_ARCH ?= 80 90a
# the toolkit's root as nvcc itself reports it (nvcc may be a wrapper script
# outside the toolkit, e.g. /usr/local/bin/nvcc)
ifneq ($(NVCC),)
ifeq ($(origin CUDA_HOME),undefined)
CUDA_HOME := $(shell $(NVCC) -dryrun -c -x cu /dev/null 2>&1 | sed -n 's/^\#\$$ TOP=//p' | head -n 1 | xargs -r realpath 2>/dev/null)
endif
ifeq ($(CUDA_HOME),)
CUDA_HOME := $(patsubst %/bin/nvcc,%,$(NVCC))
endif
endif
CUDA_LIBDIR ?= $(firstword $(wildcard $(CUDA_HOME)/lib64/libcudart.so $(CUDA_HOME)/targets/x86_64-linux/lib/libcudart.so))
CUDA_LIBDIR := $(patsubst %/libcudart.so,%,$(CUDA_LIBDIR))
# the link needs cuBLAS and cuBLASLt beside the runtime
ifneq ($(words $(wildcard $(CUDA_LIBDIR)/libcublasLt.so $(CUDA_LIBDIR)/libcublas.so)),2)
CUDA_LIBDIR :=
endif
# CUDA on by default when nvcc and the libraries (cudart, cuBLAS, cuBLASLt) are there
ifeq ($(NVCC),)
CUDA ?= 0
else ifeq ($(CUDA_LIBDIR),)
ifeq ($(CUDA),1)
$(error CUDA=1 but libcudart, libcublas or libcublasLt is missing under '$(CUDA_HOME)' (nvcc $(NVCC)); set CUDA_HOME=/path/to/cuda or build with CUDA=0)
endif
ifneq ($(CUDA),0)
$(warning nvcc found ($(NVCC)) but libcudart, libcublas or libcublasLt is missing under '$(CUDA_HOME)': building without CUDA)
endif
CUDA ?= 0
else
CUDA ?= 1
endif
# -Xfatbin -compress-all: every object's device code compressed (nvcc's default
# leaves some uncompressed, which made nsa's two objects 7x larger)
NVCCFLAGS := -O3 -std=c++17 -lineinfo -Xcompiler -Wall,-Werror -Ikernels/common -Ikernels/dma \
             -Ibaselines/mha -Ibaselines/swa -Ibaselines/nsa -Imodel -Xfatbin -compress-all \
             $(foreach a,$(CUDA_ARCH),-gencode=arch=compute_$(a),code=sm_$(a))

C_SRCS  := $(wildcard kernels/*/*.c baselines/*/*.c model/*.c tasks/*/*.c harness/*.c)
LIB_SRCS := $(filter-out harness/main.c,$(C_SRCS))
CU_SRCS := $(wildcard kernels/*/*.cu baselines/*/*.cu model/*.cu)
TEST_SRCS := $(wildcard tests/test_*.c)

ifeq ($(CUDA),1)
CFLAGS  += -DDMABENCH_CUDA=1
LDLIBS  += -L$(CUDA_LIBDIR) -lcublasLt -lcublas -lcudart -lstdc++ \
           -Wl,-rpath,'$$ORIGIN/lib' -Wl,-rpath,$(CUDA_LIBDIR)
CU_OBJS := $(CU_SRCS:%.cu=$(BUILD)/%.cu.o)
else
CU_OBJS :=
endif

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(CU_OBJS)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)

VERSION := 0.1.0

.PHONY: all setup run test test-gpu clean info FORCE
all: info $(BUILD)/dmabench

info:
	@echo "dmabench build: CC=$(CC) CUDA=$(CUDA)$(if $(filter 1,$(CUDA)), (nvcc $(NVCC), arch $(CUDA_ARCH)))"

setup:
	@sh scripts/setup.sh

# version.h: rewritten only when the commit, dirty state or flags change
$(BUILD)/gen/version.h: FORCE
	@mkdir -p $(dir $@)
	@{ echo '#define DMABENCH_VERSION "$(VERSION)"'; \
	   echo '#define DMABENCH_GIT_COMMIT "'"$$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"'"'; \
	   echo '#define DMABENCH_GIT_DIRTY '"$$(test -n "$$(git status --porcelain --untracked-files=no 2>/dev/null)" && echo 1 || echo 0)"; \
	   echo '#define DMABENCH_CFLAGS "$(CFLAGS)"'; } > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(BUILD)/harness/report.o $(BUILD)/harness/main.o: $(BUILD)/gen/version.h

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libdmabench.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/dmabench: $(BUILD)/harness/main.o $(BUILD)/libdmabench.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)
ifeq ($(CUDA),1)
	@mkdir -p $(BUILD)/lib && cp -L /usr/lib/x86_64-linux-gnu/libcjson.so.1 $(BUILD)/lib/ 2>/dev/null || true
endif

$(BUILD)/tests/%: tests/%.c $(BUILD)/libdmabench.a tests/check.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(BUILD)/libdmabench.a -o $@ $(LDLIBS)

# the loopback HTTP server of the fetch/upload tests
$(BUILD)/tests/test_reports_net: tests/httpd.h

run: setup
	@$(MAKE) --no-print-directory all
	@sh scripts/run-main.sh

test: setup
	@$(MAKE) --no-print-directory all $(TEST_BINS)
	@sh scripts/run-tests.sh $(TEST_BINS)

# every test, with the GPU ones on (tests/gpu.sh runs the GPU test programs, so
# they are not run a second time here)
test-gpu: setup
	@$(MAKE) --no-print-directory all $(TEST_BINS)
	@DMABENCH_GPU=1 sh scripts/run-tests.sh $(filter-out %/test_model_gpu %/test_model_gpu_train,$(TEST_BINS))

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
