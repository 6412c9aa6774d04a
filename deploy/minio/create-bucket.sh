#!/bin/sh
# One-off (compose service minio-bucket): the media bucket, private, and the application's key
# with read/write on that bucket only. Safe to run again. Reads deploy/env/minio.env and minio-bucket.env.
set -eu
mc alias set egoejo http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "egoejo/$AWS_STORAGE_BUCKET_NAME"
mc anonymous set none "egoejo/$AWS_STORAGE_BUCKET_NAME"
cat > /tmp/media-policy.json <<POLICY
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::$AWS_STORAGE_BUCKET_NAME"]},
  {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], "Resource": ["arn:aws:s3:::$AWS_STORAGE_BUCKET_NAME/*"]}
]}
POLICY
mc admin policy create egoejo egoejo-media /tmp/media-policy.json 2>/dev/null || true
mc admin user add egoejo "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
mc admin policy attach egoejo egoejo-media --user "$AWS_ACCESS_KEY_ID" 2>/dev/null || true
echo "bucket $AWS_STORAGE_BUCKET_NAME ready"
