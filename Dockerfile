# The job image for BraketExecutor, for the Python of the Covalent server that dispatches to it:
# the pickled electron can only be loaded by the same Python minor version (the job runner
# refuses to run otherwise), so build one image per server Python.
#
#   PYTHON_VERSION=3.12        Amazon's Braket base jobs image (Python 3.12 only): its own
#                              braket_container.py runs the job.
#   PYTHON_VERSION=3.10, 3.11, 3.13
#                              a "bring your own container" image on python:<version>-slim: the
#                              SageMaker training toolkit starts $SAGEMAKER_PROGRAM in
#                              /opt/ml/code, which runs covalent_braket_plugin.job.container,
#                              the same contract as Amazon's script; and the quantum stack of
#                              Amazon's image (job-image-requirements.txt: the Braket SDK, its
#                              PennyLane plugin, PennyLane, NumPy, SciPy).
#   BASE=byoc                  the BYOC image for any PYTHON_VERSION, 3.12 included.
#
# Either way covalent, cloudpickle and this plugin (from the build context) are installed; the
# job runner itself is uploaded with every job (script mode). Every Braket instance type is
# x86_64, so every stage is linux/amd64 whatever machine builds it (an arm64 image, built on an
# Apple-silicon Mac by default, fails every job with "exec format error"). Build with BuildKit
# (the default builder), so that only the selected base is pulled, from the repository's root:
#
#   docker build --platform linux/amd64 --build-arg PYTHON_VERSION=3.11 \
#       --build-arg COVALENT_VERSION=0.240.0 --build-arg CLOUDPICKLE_VERSION=2.2.1 \
#       -t covalent-braket:py3.11 .
#
# (see README.md, "Running on AWS", for pushing it to ECR; pulling the 3.12 base needs a
# `docker login` to 292282985366.dkr.ecr.us-west-2.amazonaws.com first.)

ARG PYTHON_VERSION=3.12
ARG BRAKET_BASE_IMAGE=292282985366.dkr.ecr.us-west-2.amazonaws.com/amazon-braket-base-jobs:latest
# The stage the job image is built on: the one for PYTHON_VERSION unless named.
ARG BASE=python-${PYTHON_VERSION}

# Python 3.12: Amazon's managed image, as it is.
FROM --platform=linux/amd64 ${BRAKET_BASE_IMAGE} AS python-3.12

# Any other Python: bring your own container, set up as Amazon's base image is.
FROM --platform=linux/amd64 python:${PYTHON_VERSION}-slim AS byoc
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONIOENCODING=UTF-8 \
    LANG=C.UTF-8 \
    LC_ALL=C.UTF-8
# The toolkit that Braket's jobs start (`train`), the version Amazon's image has. It compiles
# a small C extension, and so may a package without a wheel for this Python (a job's
# requirements.txt, or SQLAlchemy 1.4 on 3.13): a C compiler stays, as in Amazon's image.
ARG SAGEMAKER_TRAINING_VERSION=5.1.1
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && python -m pip install --no-cache-dir "sagemaker-training==${SAGEMAKER_TRAINING_VERSION}"
# The container script the toolkit runs: our implementation of Amazon's braket_container.py.
RUN mkdir -p /opt/ml/code \
 && echo "from covalent_braket_plugin.job.container import main; main()" \
    > /opt/ml/code/braket_container.py
ENV SAGEMAKER_PROGRAM=braket_container.py
# What a Braket user's electron imports, as Amazon's image has it (versions and their source in
# the file).
COPY job-image-requirements.txt /tmp/job-image-requirements.txt
RUN python -m pip install --no-cache-dir -r /tmp/job-image-requirements.txt \
 && rm /tmp/job-image-requirements.txt

FROM byoc AS python-3.10
FROM byoc AS python-3.11
FROM byoc AS python-3.13

# The job image: the selected base, plus what the job runner and the pickled electron need.
FROM ${BASE}
ARG COVALENT_VERSION=0.240.0
ARG CLOUDPICKLE_VERSION=2.2.1
COPY pyproject.toml README.md LICENSE /tmp/covalent-braket-plugin/
COPY covalent_braket_plugin /tmp/covalent-braket-plugin/covalent_braket_plugin
RUN python -m pip install --no-cache-dir \
        /tmp/covalent-braket-plugin \
        "covalent==${COVALENT_VERSION}" \
        "cloudpickle==${CLOUDPICKLE_VERSION}" \
 && rm -rf /tmp/covalent-braket-plugin
