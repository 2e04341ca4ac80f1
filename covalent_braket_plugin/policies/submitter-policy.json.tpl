{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "CreateJobsOnDevices",
      "Effect": "Allow",
      "Action": "braket:CreateJob",
      "Resource": "arn:${partition}:braket:*::device/*"
    },
    {
      "Sid": "BraketJobs",
      "Effect": "Allow",
      "Action": ["braket:GetJob", "braket:CancelJob", "braket:TagResource"],
      "Resource": "arn:${partition}:braket:*:${account}:job/*"
    },
    {
      "Sid": "BraketSearchAndDevices",
      "Effect": "Allow",
      "Action": ["braket:SearchJobs", "braket:GetDevice"],
      "Resource": "*"
    },
    {
      "Sid": "ReadBraketJobQuotas",
      "Effect": "Allow",
      "Action": "servicequotas:GetServiceQuota",
      "Resource": "arn:${partition}:servicequotas:*:${account}:braket/*"
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
      "Sid": "ReadAmazonsManagedJobImages",
      "Effect": "Allow",
      "Action": ["ecr:DescribeImages", "ecr:BatchGetImage"],
      "Resource": "arn:${partition}:ecr:*:292282985366:repository/amazon-braket-*"
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
