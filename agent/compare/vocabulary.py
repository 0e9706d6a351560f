"""The ontology terms a diff graph uses (agent/ontology/batchflow.ttl, "diff")."""
from rdflib.namespace import DefinedNamespace, Namespace


class BFDiff(DefinedNamespace):
    _NS = Namespace("urn:batchflow:ns#")
    _fail = True

    # classes and individuals
    Diff: object
    Change: object
    ChangeStatus: object
    Added: object
    Removed: object
    Changed: object
    PossibleCollision: object
    # properties
    leftRun: object
    rightRun: object
    same: object
    change: object
    collision: object
    changeKind: object
    status: object
    identity: object
    leftProcess: object
    rightProcess: object
    leftFile: object
    rightFile: object
    normalizedPath: object
    changedAccess: object
    leftValue: object
    rightValue: object
    writtenBy: object
    collidingPath: object
    overlap: object
    sameRun: object
    # existing terms a diff points at
    Read: object
    Write: object
    ReadWrite: object
    Stat: object
    Execute: object
    Chdir: object
    ontology: object
