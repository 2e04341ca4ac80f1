{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "BraketJobs",
      "Effect": "Allow",
      "Action": ["braket:CreateJob", "braket:GetJob", "braket:CancelJob", "braket:SearchJobs", "braket:TagResource"],
      "Resource": "arn:${partition}:braket:${region}:${account}:job/*"
    },
    {
      "Sid": "BraketSearchAndDevices",
      "Effect": "Allow",
      "Action": ["braket:SearchJobs", "braket:GetDevice"],
      "Resource": "*"
    },
    {
      "Sid": "PassTheJobRoleToBraketOnly",
      "Effect": "Allow",
      "Action": "iam:PassRole",
      "Resource": "${job_role_arn}",
      "Condition": {"StringEquals": {"iam:PassedToService": "braket.amazonaws.com"}}
    },
    {
      "Sid": "CheckTheJobRole",
      "Effect": "Allow",
      "Action": "iam:GetRole",
      "Resource": "${job_role_arn}"
    },
    {
      "Sid": "CheckTheImage",
      "Effect": "Allow",
      "Action": "ecr:DescribeImages",
      "Resource": "${repository_arn}"
    },
    {
      "Sid": "TaskObjects",
      "Effect": "Allow",
      "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
      "Resource": "arn:${partition}:s3:::${bucket}/${prefix}/*"
    },
    {
      "Sid": "TaskBucketExists",
      "Effect": "Allow",
      "Action": "s3:ListBucket",
      "Resource": "arn:${partition}:s3:::${bucket}"
    },
    {
      "Sid": "JobLogs",
      "Effect": "Allow",
      "Action": ["logs:DescribeLogStreams", "logs:GetLogEvents"],
      "Resource": [
        "arn:${partition}:logs:${region}:${account}:log-group:/aws/braket/jobs",
        "arn:${partition}:logs:${region}:${account}:log-group:/aws/braket/jobs:log-stream:*"
      ]
    }
  ]
}
