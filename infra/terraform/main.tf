# The AWS resources BraketExecutor needs, with least privilege:
#  - an encrypted, private S3 bucket whose task artifacts expire,
#  - the job execution role Braket assumes (scoped to the task prefix, the Braket log group and
#    quantum-task calls),
#  - an ECR repository for the job image,
#  - a submitter policy for whoever runs the Covalent server.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  # A bucket name is global: one of the account's own, unless a name is given.
  bucket_name = var.bucket_name != "" ? var.bucket_name : "amazon-braket-covalent-${data.aws_region.current.name}-${data.aws_caller_identity.current.account_id}"
  policy_vars = {
    partition      = data.aws_partition.current.partition
    region         = data.aws_region.current.name
    account        = data.aws_caller_identity.current.account_id
    bucket         = aws_s3_bucket.tasks.bucket
    prefix         = var.task_prefix
    job_role_arn   = aws_iam_role.job.arn
    repository_arn = aws_ecr_repository.jobs.arn
    kms_key_arn    = var.kms_key_arn
    device_arns    = jsonencode(var.quantum_devices)
  }
}

resource "aws_s3_bucket" "tasks" {
  bucket = local.bucket_name
}

resource "aws_s3_bucket_public_access_block" "tasks" {
  bucket                  = aws_s3_bucket.tasks.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "tasks" {
  bucket = aws_s3_bucket.tasks.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == "" ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn == "" ? null : var.kms_key_arn
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "tasks" {
  bucket = aws_s3_bucket.tasks.id
  rule {
    id     = "expire-task-artifacts"
    status = "Enabled"
    filter {
      prefix = "${var.task_prefix}/"
    }
    expiration {
      days = var.artifact_expiry_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
  rule {
    # The results of the quantum tasks the executor's jobs (named cov-...) create.
    id     = "expire-quantum-task-results"
    status = "Enabled"
    filter {
      prefix = "jobs/cov-"
    }
    expiration {
      days = var.artifact_expiry_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_ecr_repository" "jobs" {
  name                 = var.name
  image_tag_mutability = "IMMUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
}

resource "aws_iam_role" "job" {
  name = "${var.name}-job"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "braket.amazonaws.com" }
      Action    = "sts:AssumeRole"
      # No aws:SourceAccount / aws:SourceArn condition: Braket is not documented to send
      # them when it assumes the job role, and a condition it does not meet fails every job.
    }]
  })
}

resource "aws_iam_role_policy" "job" {
  name   = "${var.name}-job"
  role   = aws_iam_role.job.id
  policy = templatefile("${path.module}/../policies/job-role-policy.json.tpl", local.policy_vars)
}

resource "aws_iam_policy" "submitter" {
  name   = "${var.name}-submitter"
  policy = templatefile("${path.module}/../policies/submitter-policy.json.tpl", local.policy_vars)
}

# With a KMS key, both principals may use exactly that key, through S3 only: the submitter to
# write inputs and read results, the job role to read inputs and write results. Without one,
# no KMS action is granted.
resource "aws_iam_role_policy" "job_kms" {
  count  = var.kms_key_arn == "" ? 0 : 1
  name   = "${var.name}-job-kms"
  role   = aws_iam_role.job.id
  policy = templatefile("${path.module}/../policies/kms-policy.json.tpl", local.policy_vars)
}

resource "aws_iam_policy" "submitter_kms" {
  count  = var.kms_key_arn == "" ? 0 : 1
  name   = "${var.name}-submitter-kms"
  policy = templatefile("${path.module}/../policies/kms-policy.json.tpl", local.policy_vars)
}

resource "aws_iam_role_policy_attachment" "submitter" {
  for_each   = toset([for arn in var.submitter_principal_arns : arn if can(regex(":role/", arn))])
  role       = element(split("/", each.value), length(split("/", each.value)) - 1)
  policy_arn = aws_iam_policy.submitter.arn
}

resource "aws_iam_role_policy_attachment" "submitter_kms" {
  for_each   = var.kms_key_arn == "" ? toset([]) : toset([for arn in var.submitter_principal_arns : arn if can(regex(":role/", arn))])
  role       = element(split("/", each.value), length(split("/", each.value)) - 1)
  policy_arn = aws_iam_policy.submitter_kms[0].arn
}
