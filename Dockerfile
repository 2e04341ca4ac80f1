# The job image for BraketExecutor: the AWS Braket base jobs image plus the packages the job
# runner and the pickled electron need. The runner itself is uploaded with every job (script
# mode), so this image does not change when the plugin does.
#
# The image's Python minor version must match the Python of the Covalent server that
# dispatches to it (the runner refuses to run otherwise); pick the base tag accordingly.
#
#   docker build -t covalent-braket:latest .
#   (see README.md, "Running on AWS", for pushing it to ECR)
ARG BRAKET_BASE_IMAGE=292282985366.dkr.ecr.us-west-2.amazonaws.com/amazon-braket-base-jobs:latest
FROM ${BRAKET_BASE_IMAGE}

ARG COVALENT_VERSION=0.240.0
RUN python -m pip install --no-cache-dir \
        "covalent==${COVALENT_VERSION}" \
        "fastapi<0.132" \
        "cloudpickle>=2.2,<4" \
        "boto3>=1.34,<2"
