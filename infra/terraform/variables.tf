variable "name" {
  description = "Prefix of every resource's name"
  type        = string
  default     = "covalent-braket"
}

variable "bucket_name" {
  description = "Name of the S3 bucket for task inputs, results and job outputs; empty for amazon-braket-covalent-<region>-<account>"
  type        = string
  default     = ""

  validation {
    # Braket writes quantum task results through its service-linked role, whose policy
    # (AmazonBraketServiceRolePolicy) allows only buckets named amazon-braket-*.
    condition     = var.bucket_name == "" || startswith(var.bucket_name, "amazon-braket-")
    error_message = "bucket_name must start with amazon-braket-: Braket's service-linked role writes quantum task results only to buckets named amazon-braket-*."
  }
}

variable "task_prefix" {
  description = "Key prefix the executor writes under (the executor's S3_PREFIX)"
  type        = string
  default     = "covalent-braket"
}

variable "artifact_expiry_days" {
  description = "Days after which task artifacts (and job outputs under the prefix) expire"
  type        = number
  default     = 30
}

variable "kms_key_arn" {
  description = "KMS key for the bucket's default encryption and the task objects (its use is granted to the job role and the submitter); empty for SSE-S3"
  type        = string
  default     = ""
}

variable "submitter_principal_arns" {
  description = "IAM users or roles that dispatch (the Covalent server); they get the submitter policy"
  type        = list(string)
  default     = []
}

variable "quantum_devices" {
  description = "Devices the job role may create quantum tasks on (the executor's quantum_device, and any other your jobs' code uses)"
  type        = list(string)
  default     = ["arn:aws:braket:::device/quantum-simulator/amazon/sv1"]
}
