"""Locust HttpUser side of the generator benchmark (zero wait, GET /)."""

from locust import HttpUser, constant, task


class Plain(HttpUser):
    wait_time = constant(0)

    @task
    def home(self):
        self.client.get("/")
