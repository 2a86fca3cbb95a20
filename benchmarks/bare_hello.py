"""The baseline: the barest FastAPI app on uvicorn with the same server settings as the gateway."""

import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
                http="httptools", loop="uvloop", server_header=False, date_header=False)
