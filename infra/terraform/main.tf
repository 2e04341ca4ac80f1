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
  policy_vars = {
    partition      = data.aws_partition.current.partition
    region         = data.aws_region.current.name
    account        = data.aws_caller_identity.current.account_id
    bucket         = aws_s3_bucket.tasks.bucket
    prefix         = var.task_prefix
    job_role_arn   = aws_iam_role.job.arn
    repository_arn = aws_ecr_repository.jobs.arn
  }
}

resource "aws_s3_bucket" "tasks" {
  bucket = var.bucket_name
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
      Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
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

resource "aws_iam_role_policy_attachment" "submitter" {
  for_each   = toset([for arn in var.submitter_principal_arns : arn if can(regex(":role/", arn))])
  role       = element(split("/", each.value), length(split("/", each.value)) - 1)
  policy_arn = aws_iam_policy.submitter.arn
}
