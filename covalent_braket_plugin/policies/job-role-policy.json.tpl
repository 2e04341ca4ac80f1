{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ReadTaskObjects",
      "Effect": "Allow",
      "Action": "s3:GetObject",
      "Resource": "arn:${partition}:s3:::${bucket}/${prefix}/*"
    },
    {
      "Sid": "WriteResultsOutputsAndCheckpoints",
      "Effect": "Allow",
      "Action": "s3:PutObject",
      "Resource": [
        "arn:${partition}:s3:::${bucket}/${prefix}/*/result.pkl",
        "arn:${partition}:s3:::${bucket}/${prefix}/*/done.json",
        "arn:${partition}:s3:::${bucket}/${prefix}/*/closed.json",
        "arn:${partition}:s3:::${bucket}/${prefix}/*/output/*",
        "arn:${partition}:s3:::${bucket}/${prefix}/*/checkpoints/*"
      ]
    },
    {
      "Sid": "QuantumTaskResults",
      "Effect": "Allow",
      "Action": ["s3:GetObject", "s3:PutObject"],
      "Resource": "arn:${partition}:s3:::${bucket}/jobs/*"
    },
    {
      "Sid": "ListOwnPrefixes",
      "Effect": "Allow",
      "Action": "s3:ListBucket",
      "Resource": "arn:${partition}:s3:::${bucket}",
      "Condition": {"StringLike": {"s3:prefix": ["${prefix}/*", "jobs/*"]}}
    },
    {
      "Sid": "QuantumTasksOnTheJobsDevices",
      "Effect": "Allow",
      "Action": "braket:CreateQuantumTask",
      "Resource": ${device_arns}
    },
    {
      "Sid": "QuantumTasks",
      "Effect": "Allow",
      "Action": ["braket:GetQuantumTask", "braket:CancelQuantumTask", "braket:SearchQuantumTasks", "braket:GetDevice", "braket:SearchDevices"],
      "Resource": "*"
    },
    {
      "Sid": "JobLogs",
      "Effect": "Allow",
      "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
      "Resource": [
        "arn:${partition}:logs:${region}:${account}:log-group:/aws/braket/jobs",
        "arn:${partition}:logs:${region}:${account}:log-group:/aws/braket/jobs:log-stream:*"
      ]
    },
    {
      "Sid": "JobMetrics",
      "Effect": "Allow",
      "Action": "cloudwatch:PutMetricData",
      "Resource": "*",
      "Condition": {"StringEquals": {"cloudwatch:namespace": "/aws/braket"}}
    },
    {
      "Sid": "PullTheJobImage",
      "Effect": "Allow",
      "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
      "Resource": "${repository_arn}"
    },
    {
      "Sid": "PullAmazonsManagedJobImages",
      "Effect": "Allow",
      "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
      "Resource": "arn:${partition}:ecr:*:292282985366:repository/amazon-braket-*"
    },
    {
      "Sid": "EcrLogin",
      "Effect": "Allow",
      "Action": "ecr:GetAuthorizationToken",
      "Resource": "*"
    }
  ]
}
