output "s3_bucket_name" {
  description = "BraketExecutor s3_bucket_name"
  value       = aws_s3_bucket.tasks.bucket
}

output "braket_job_execution_role_name" {
  description = "BraketExecutor braket_job_execution_role_name (an ARN works too)"
  value       = aws_iam_role.job.arn
}

output "ecr_repository_url" {
  description = "Push the job image here; BraketExecutor ecr_image_uri is <url>:<tag>"
  value       = aws_ecr_repository.jobs.repository_url
}

output "submitter_policy_arn" {
  description = "Attach to whoever runs the Covalent server"
  value       = aws_iam_policy.submitter.arn
}
