"""Workspaces (indexed repositories) and adapters."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from server.errors import ERROR_RESPONSES
from server.auth import is_admin
from server.runtime import Runtime, runtime
from server.schemas import AdapterList, AdapterOut, WorkspaceIn, WorkspaceList, WorkspaceOut

router = APIRouter(tags=["workspaces"])


@router.post("/v1/workspaces", response_model=WorkspaceOut, status_code=202, responses=ERROR_RESPONSES)
def register_workspace(body: WorkspaceIn, request: Request, rt: Runtime = Depends(runtime)) -> WorkspaceOut:
    """Register a repository on the server's disk (inside a root the operator allows) and index it in the background."""
    rt.require_manager(request)
    return WorkspaceOut(**rt.jobs.start(rt.paths.workspace_root(body.root), body.name).as_dict())


@router.get("/v1/workspaces", response_model=WorkspaceList, responses=ERROR_RESPONSES)
def list_workspaces(rt: Runtime = Depends(runtime)) -> WorkspaceList:
    return WorkspaceList(workspaces=[WorkspaceOut(**job.as_dict()) for job in rt.jobs.all()])


@router.get("/v1/workspaces/{name}", response_model=WorkspaceOut, responses=ERROR_RESPONSES)
def get_workspace(name: str, rt: Runtime = Depends(runtime)) -> WorkspaceOut:
    """Indexing progress (files done / total) and, once ready, the index summary."""
    return WorkspaceOut(**rt.jobs.get(name).as_dict())


@router.delete("/v1/workspaces/{name}", response_model=WorkspaceOut, responses=ERROR_RESPONSES)
def unregister_workspace(name: str, request: Request, rt: Runtime = Depends(runtime)) -> WorkspaceOut:
    """Stop serving a workspace; requests naming it get 404 from now on (its index cache is kept)."""
    rt.require_manager(request)
    return WorkspaceOut(**rt.jobs.remove(name).as_dict())


@router.get("/v1/adapters", response_model=AdapterList, responses=ERROR_RESPONSES)
def list_adapters(request: Request, rt: Runtime = Depends(runtime)) -> AdapterList:
    """Adapters loaded at start; their server paths only for an admin token."""
    admin = is_admin(request)
    return AdapterList(adapters=[AdapterOut(name=name, path=path if admin else None) for name, path in sorted(rt.adapters.items())])
