"""Locust HttpUser, idle users (wait 5-10 s): memory per user."""

from locust import HttpUser, between, task


class IdleHttp(HttpUser):
    wait_time = between(5, 10)

    @task
    def home(self):
        self.client.get("/")
