"""Event webhooks to the integrating product (issue 12): signed per Standard Webhooks."""
