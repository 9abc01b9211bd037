# Capstan. `make up` starts the all-in-one cluster; `make test` runs the suite.
GO        ?= go
BIN       := bin/capstan
PKGS      := ./...
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/capstanhq/capstan/version.Version=$(VERSION)
# Debian packages the end-to-end tests and `capstan up` need (curl: the
# journeys of cmd/capstan; gpg: the OpenPGP interop tests of gitsync; etcd
# and dnsperf: the anchors of the side-by-side benchmarks in bench/; kmod:
# modprobe, for the br_netfilter module the service proxy loads; age:
# age-keygen, which docs/secrets.md and docs/ha.md use to make a team's own
# key). Go (the
# version go.mod names) and make come first, from go.dev.
APT_PKGS  := containerd runc containernetworking-plugins nftables git iproute2 openssh-client e2fsprogs etcd-server etcd-client dnsperf curl gpg gpg-agent kmod age
TEST_FLAGS ?= -count=1 -timeout 25m

.PHONY: all build test unit bench anchors lint deps fuzz clean mutate

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/capstan

# deps installs, as root, the system packages that end-to-end tests and
# `capstan up` need, when they are missing. Without root it only reports.
# Debian's etcd-server starts etcd as a service on 127.0.0.1:2379 when it
# is installed; the benchmarks start their own, so a service that deps
# installed is stopped and disabled (one that was there before is left).
deps:
	@missing=""; for p in $(APT_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "deps: installing$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing || exit 1; \
		case " $$missing " in *" etcd-server "*) \
			if [ -d /run/systemd/system ]; then systemctl disable --now -q etcd.service 2>/dev/null; \
			elif [ -x /etc/init.d/etcd ]; then /etc/init.d/etcd stop >/dev/null 2>&1; update-rc.d etcd disable >/dev/null 2>&1; fi; \
			echo "deps: stopped and disabled the etcd service that etcd-server started (tests start their own etcd)";; \
		esac; \
	else echo "deps: missing$$missing (run 'make deps' as root)"; fi

# test runs unit, integration and end-to-end tests. End-to-end tests need
# root; under CI=true a missing prerequisite fails them instead of skipping.
test: deps lint
	$(GO) test $(TEST_FLAGS) $(PKGS)

unit:
	$(GO) test -short -count=1 $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m $(PKGS)

# anchors runs the side-by-side benchmarks of docs/benchmarks.md on this
# machine, each reporting Capstan, its anchor and their ratio: creates and
# the transport's ceiling beside etcd (plaintext and TLS), watch fan-out
# beside etcd's watch, pod start beside `ctr run --cni` (root), DNS beside
# CoreDNS with dnsperf. An anchor that is not installed is reported as
# skipped. The 5-minute stall run and the 30,000-pod scale run take longer
# and are separate (their commands are in docs/benchmarks.md).
anchors: deps
	$(GO) test -run '^$$' -bench 'CreatesVsEtcd|TransportCeiling' -benchtime 3x -timeout 30m ./bench
	$(GO) test -run '^$$' -bench WatchFanoutVsEtcd -benchtime 30x -timeout 30m ./bench
	$(GO) test -run '^$$' -bench PodStartVsCtrRun -benchtime 1x -timeout 30m ./agent
	sh bench/dns.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# fuzz runs each fuzz target for FUZZTIME.
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf bin

# mutate runs mutation testing over PKG (a package directory): gremlins
# (a Go tool dependency) flips operators, negates conditions and changes
# literals, and runs the package's own tests against each mutant. Too slow
# for make test; scores are recorded in docs/testing.md.
PKG ?= ./apiserver/api
MUTATE_FLAGS ?= --workers 2 --invert-logical --invert-loopctrl --remove-self-assignments
mutate:
	$(GO) tool gremlins unleash $(MUTATE_FLAGS) $(PKG)

# images builds the example programs in examples/images statically and pushes
# each as $(REGISTRY)/examples/NAME:$(IMAGE_TAG) with `capstan image pack
# --push`. The registry must be running (`capstan up` serves one on
# 127.0.0.1:5000) and pushes need its credentials: set CAPSTAN_CONFIG to its
# admin config (CAPSTAN_CONFIG=/var/lib/capstan/admin.yaml make images). The
# hello image reports IMAGE_TAG as its version.
REGISTRY  ?= 127.0.0.1:5000
IMAGE_TAG ?= v1
EXAMPLE_IMAGES := hello api worker shipper kv
.PHONY: images
images: build
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	for img in $(EXAMPLE_IMAGES); do \
		case $$img in \
			hello) flags="--port 8080 --env VERSION=$(IMAGE_TAG)" ;; \
			api) flags="--port 9000" ;; \
			kv) flags="--port 8080 --env VERSION=$(IMAGE_TAG)" ;; \
			*) flags="" ;; \
		esac; \
		mkdir "$$tmp/$$img" && \
		CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '-s -w' -o "$$tmp/$$img/$$img" ./examples/images/$$img && \
		$(BIN) image pack "$$tmp/$$img" --entrypoint /$$img $$flags \
			--tag $(REGISTRY)/examples/$$img:$(IMAGE_TAG) --push || exit 1; \
	done

# up starts the all-in-one cluster, as root on a Debian machine: the system
# packages when missing (deps), the binary, the example images as tarballs
# in bin/images (hello and kv come as v1 and v2 for the rolling-update
# walkthrough), then `capstan up`, which pushes them into its registry.
# Pass more flags with UP_FLAGS, e.g. UP_FLAGS='--data-dir /tmp/capstan'.
#
# up-images makes the tarballs alone. Each is a file target that depends on
# its program's sources (not its tests) and go.mod: an edited example is
# built and packed again by the next `make up` (and pushed, its digest
# having changed); an unchanged one is not. Packing is reproducible, so a
# rebuild of unchanged sources (after a git checkout, say) gives the same
# digest and `capstan up` does not push it again.
UP_IMAGES    := hello:v1 hello:v2 api:v1 worker:v1 shipper:v1 kv:v1 kv:v2
UP_IMAGE_DIR ?= bin/images
UP_FLAGS     ?=
up_image_name = $(word 1,$(subst :, ,$(1)))
up_image_tag  = $(word 2,$(subst :, ,$(1)))
up_image_tar  = $(UP_IMAGE_DIR)/$(call up_image_name,$(1))-$(call up_image_tag,$(1)).tar
up_image_srcs = $(filter-out %_test.go,$(wildcard examples/images/$(1)/*.go)) go.mod
up_image_flags = $(if $(filter hello kv,$(1)),--port 8080 --env VERSION=$(2),$(if $(filter api,$(1)),--port 9000))
UP_TARS      := $(foreach s,$(UP_IMAGES),$(call up_image_tar,$(s)))

# up_image_rule IMG TAG: the rule for one tarball. It is written in a
# temporary directory and moved into place, so a failed build leaves no
# tarball that a later make would take as up to date.
define up_image_rule
$(UP_IMAGE_DIR)/$(1)-$(2).tar: $(call up_image_srcs,$(1)) | build
	@mkdir -p $(UP_IMAGE_DIR) && tmp=$$$$(mktemp -d) && trap 'rm -rf "$$$$tmp"' EXIT && \
	mkdir "$$$$tmp/$(1)" && \
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '-s -w' -o "$$$$tmp/$(1)/$(1)" ./examples/images/$(1) && \
	$(BIN) image pack "$$$$tmp/$(1)" --entrypoint /$(1) $(call up_image_flags,$(1),$(2)) \
		--tag $(REGISTRY)/examples/$(1):$(2) -o "$$$$tmp/$(1)-$(2).tar" && \
	mv "$$$$tmp/$(1)-$(2).tar" $$@
endef
$(foreach s,$(UP_IMAGES),$(eval $(call up_image_rule,$(call up_image_name,$(s)),$(call up_image_tag,$(s)))))

.PHONY: up up-images
up-images: $(UP_TARS)

up: deps build up-images
	$(BIN) up --images $(UP_IMAGE_DIR) $(UP_FLAGS)
