{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "TaskObjectsKmsKey",
      "Effect": "Allow",
      "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
      "Resource": "${kms_key_arn}",
      "Condition": {"StringEquals": {"kms:ViaService": "s3.${region}.amazonaws.com"}}
    }
  ]
}
