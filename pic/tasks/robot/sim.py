"""The tabletop world of the robot task: pybullet (DIRECT mode, CPU), pybullet_data's table, a Kuka iiwa arm and
2-4 coloured 5 cm cubes, seen by three cameras through the CPU renderer (ER_TINY_RENDERER).

Cameras: "front" and "side" look across the table from 16 cm above it (13 degrees of elevation: depth shows
only as small shifts, and near cubes hide far ones), "top" looks straight down (heights show only as a hidden
lower cube and a slightly larger upper one). Each sees what the others miss.

Two ways to move a cube:
- `predict` (the planner's world model): restore a saved state, put the cube at its target kinematically, let
  physics settle for a few steps, render. The arm does not move; this is a simplified simulator, used only to
  predict the outcome of a candidate action.
- `execute` (what really happens): the arm picks the cube (inverse kinematics, joint position control, a fixed
  constraint as the grasp once the tool touches the cube) and places it; a missed or dropped grasp is reported
  in the result, never raised.

World frame: x points from the robot towards the front camera, y to the front camera's right, z up; the table
top is at z = 0.625. "left" is -y and "in front" is +x, as a person standing at the front camera sees them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pybullet as pb
import pybullet_data
import torch

COLOURS = {"red": (0.85, 0.1, 0.1), "green": (0.1, 0.7, 0.15), "blue": (0.1, 0.2, 0.9), "yellow": (0.9, 0.8, 0.1)}
CUBE = 0.05  # edge length (m)
TABLE_TOP = 0.625
WORKSPACE = ((-0.24, 0.08), (-0.20, 0.20))  # x range, y range where cubes live (m): the arm's precise reach
ROBOT_BASE = (-0.65, 0.0, TABLE_TOP)
HOME = (0.0, -0.35, 0.0, 1.75, 0.0, -1.05, 0.0)  # arm folded up and back, out of the workspace
TOOL = 0.047  # from the last link's frame down to the tip of the flange (m)
TOOL_DOWN = pb.getQuaternionFromEuler([0.0, np.pi, 0.0])
CARRY = TABLE_TOP + 2 * CUBE + CUBE + TOOL + 0.03  # tool height when moving: the held cube clears a 2-cube stack
IK_SEED = (0.0, 0.6, 0.0, -1.4, 0.0, 1.1, 0.0)  # a top-down posture over the workspace
IK_REFINEMENTS = 2
JOINT_STEP = 0.05  # rad per two physics steps (about 6 rad/s)
REACH_TOLERANCE = 0.01  # m
GRASP_TOLERANCE = 0.012  # m between the tool tip and the middle of the cube's top
CAMERAS = {  # name -> (eye, target, up, vertical field of view in degrees)
    "front": ((0.62, 0.0, 0.80), (-0.08, 0.0, 0.64), (0.0, 0.0, 1.0), 40.0),
    "side": ((-0.08, -0.72, 0.80), (-0.08, 0.0, 0.64), (0.0, 0.0, 1.0), 40.0),
    "top": ((-0.08, 0.0, 1.45), (-0.08, 0.0, TABLE_TOP), (-1.0, 0.0, 0.0), 34.0),
}
VIEWS = tuple(CAMERAS)
SETTLE_STEPS = 40  # physics steps (240 Hz) after a kinematic placement


@dataclass(frozen=True)
class Placement:
    """A pick-and-place action: move cube `cube` to (x, y) on the table, or onto cube `onto` when it is set."""

    cube: str
    x: float = 0.0
    y: float = 0.0
    onto: str | None = None

    def __str__(self) -> str:
        return f"{self.cube} onto {self.onto}" if self.onto else f"{self.cube} to ({self.x:+.3f}, {self.y:+.3f})"


NO_OP = Placement("none")  # "leave the scene as it is": lets the closed loop stop when the goal looks reached


@dataclass
class Snapshot:
    """Cube poses, and for states that physics continues from, a saved pybullet state (in-memory id).

    Predicted outcomes keep only the poses: rendering needs nothing else, and saving a full state costs time
    and memory.
    """

    positions: dict[str, np.ndarray]  # cube -> (x, y, z) of its centre
    orientations: dict[str, tuple]  # cube -> quaternion (x, y, z, w)
    state_id: int | None = None


@dataclass
class ExecutionResult:
    ok: bool
    reason: str  # "placed" | "missed grasp" | "dropped" | "unreachable"
    snapshot: Snapshot
    sim_steps: int = 0
    trajectory: list = field(default_factory=list)  # end-effector positions, for figures


class TabletopWorld:
    """One pybullet client holding the table, the arm and the cubes of the current scene."""

    def __init__(self, size: int = 64):
        self.size = size
        self.client = pb.connect(pb.DIRECT)
        c = self.client
        pb.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=c)
        pb.setGravity(0, 0, -9.81, physicsClientId=c)
        pb.setPhysicsEngineParameter(deterministicOverlappingPairs=1, physicsClientId=c)
        self.table = pb.loadURDF("table/table.urdf", [0, 0, 0], useFixedBase=True, physicsClientId=c)
        self.arm = pb.loadURDF("kuka_iiwa/model.urdf", ROBOT_BASE, useFixedBase=True, physicsClientId=c)
        self.joints = list(range(pb.getNumJoints(self.arm, physicsClientId=c)))
        info = [pb.getJointInfo(self.arm, j, physicsClientId=c) for j in self.joints]
        self.lower, self.upper = [i[8] for i in info], [i[9] for i in info]
        self.ranges = [u - lo for lo, u in zip(self.lower, self.upper)]
        self.cubes: dict[str, int] = {}
        self._saved: list[int] = []
        self._visuals: dict[str, int] = {}
        self._shape = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=[CUBE / 2] * 3, physicsClientId=c)
        self._views = {name: pb.computeViewMatrix(eye, target, up, physicsClientId=c)
                       for name, (eye, target, up, _) in CAMERAS.items()}
        self._projections = {name: pb.computeProjectionMatrixFOV(fov, 1.0, 0.05, 3.0, physicsClientId=c)
                              for name, (*_, fov) in CAMERAS.items()}
        self._arm_colours = {d[1]: d[7] for d in pb.getVisualShapeData(self.arm, physicsClientId=c)}
        self._home()
        self.show_arm(False)

    def close(self) -> None:
        pb.disconnect(self.client)

    def __enter__(self) -> TabletopWorld:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- scenes and states
    def reset_scene(self, cubes: dict[str, tuple[float, float, float]], save: bool = True) -> Snapshot:
        """A new scene: cube colour -> (x, y, yaw) resting on the table; the arm at home."""
        for body in self.cubes.values():
            pb.removeBody(body, physicsClientId=self.client)
        self.cubes = {}
        for colour, (x, y, yaw) in cubes.items():
            if colour not in COLOURS:
                raise ValueError(f"unknown cube colour {colour!r}; have {list(COLOURS)}")
            if colour not in self._visuals:  # one visual shape per colour, reused by every scene
                self._visuals[colour] = pb.createVisualShape(pb.GEOM_BOX, halfExtents=[CUBE / 2] * 3,
                                                             rgbaColor=(*COLOURS[colour], 1.0),
                                                             physicsClientId=self.client)
            self.cubes[colour] = pb.createMultiBody(0.1, self._shape, self._visuals[colour],
                                                    [x, y, TABLE_TOP + CUBE / 2],
                                                    pb.getQuaternionFromEuler([0, 0, yaw]),
                                                    physicsClientId=self.client)
            pb.changeDynamics(self.cubes[colour], -1, lateralFriction=0.8, physicsClientId=self.client)
        self._home()
        self._step(SETTLE_STEPS)
        return self.snapshot(save=save)

    def snapshot(self, save: bool = True) -> Snapshot:
        """The cube poses now, with a saved simulator state if `save` (free them with `release_states`)."""
        positions, orientations = {}, {}
        for colour, body in self.cubes.items():
            pos, orn = pb.getBasePositionAndOrientation(body, physicsClientId=self.client)
            positions[colour], orientations[colour] = np.array(pos), tuple(orn)
        state_id = pb.saveState(physicsClientId=self.client) if save else None
        if save:
            self._saved.append(state_id)
        return Snapshot(positions, orientations, state_id)

    def restore(self, snap: Snapshot) -> None:
        """Put the simulator back into a saved state, to continue physics from it."""
        if snap.state_id is None:
            raise ValueError("this snapshot holds poses only (a prediction); physics continues from saved states")
        pb.restoreState(snap.state_id, physicsClientId=self.client)

    def release_states(self) -> None:
        """Free every saved state (each holds the whole world); snapshots taken so far can no longer be restored."""
        for state_id in self._saved:
            pb.removeState(state_id, physicsClientId=self.client)
        self._saved = []

    def show(self, snap: Snapshot) -> None:
        """Put the cubes at the snapshot's poses and the arm at home, without physics (for rendering)."""
        for colour, body in self.cubes.items():
            pb.resetBasePositionAndOrientation(body, snap.positions[colour], snap.orientations[colour],
                                               physicsClientId=self.client)
        self._home()

    # ---------------------------------------------------------------- the world model
    def predict(self, snap: Snapshot, action: Placement) -> Snapshot:
        """The outcome of `action` from `snap` by kinematic placement + settling (the arm is not simulated)."""
        self.restore(snap)
        if action != NO_OP:
            x, y, z = self.target_centre(snap, action)
            pb.resetBasePositionAndOrientation(self.cubes[action.cube], [x, y, z + 0.002],
                                               snap.orientations[action.cube], physicsClientId=self.client)
            pb.resetBaseVelocity(self.cubes[action.cube], [0, 0, 0], [0, 0, 0], physicsClientId=self.client)
            self._step(SETTLE_STEPS)
        return self.snapshot(save=False)

    def target_centre(self, snap: Snapshot, action: Placement) -> tuple[float, float, float]:
        if action.onto is not None:
            below = snap.positions[action.onto]
            return float(below[0]), float(below[1]), float(below[2]) + CUBE
        return action.x, action.y, TABLE_TOP + CUBE / 2

    # ---------------------------------------------------------------- rendering
    def render_rgb(self, views=VIEWS) -> np.ndarray:
        """[V, H, W, 3] uint8 images of the current state, one per camera (CPU tiny renderer)."""
        images = np.empty((len(views), self.size, self.size, 3), dtype=np.uint8)
        for i, name in enumerate(views):
            rgba = pb.getCameraImage(self.size, self.size, self._views[name], self._projections[name],
                                     renderer=pb.ER_TINY_RENDERER, flags=pb.ER_NO_SEGMENTATION_MASK, shadow=0,
                                     physicsClientId=self.client)[2]
            images[i] = np.reshape(rgba, (self.size, self.size, 4))[..., :3]
        return images

    def show_arm(self, visible: bool) -> None:
        """The scorers' cameras see the workspace only; the arm, parked at home outside it between actions, is
        hidden from their renders (rasterising its meshes would triple the cost of a render for nothing).
        Figures show it."""
        for link, rgba in self._arm_colours.items():
            pb.changeVisualShape(self.arm, link, rgbaColor=[*rgba[:3], rgba[3] if visible else 0.0],
                                 physicsClientId=self.client)

    def render(self, views=VIEWS) -> torch.Tensor:
        """[V, 3, H, W] float images in [0, 1]; converted in numpy, not torch: for arrays this small, torch's
        thread pool costs more than the work."""
        return torch.from_numpy(self.render_rgb(views).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)

    def render_snapshot(self, snap: Snapshot, views=VIEWS) -> torch.Tensor:
        self.show(snap)
        return self.render(views)

    # ---------------------------------------------------------------- the arm
    def execute(self, snap: Snapshot, action: Placement, record: bool = False) -> ExecutionResult:
        """Pick-and-place with the arm from `snap`; the returned snapshot is the real outcome (arm back home)."""
        self.restore(snap)
        self._steps, self._trajectory, self._record = 0, [], record
        if action == NO_OP:
            return ExecutionResult(True, "no-op", self.snapshot())
        reason = self._pick_and_place(self.cubes[action.cube], action, snap)
        self._move_to((*self._tool_position()[:2], CARRY))
        self._drive(np.array(HOME))
        self._step(SETTLE_STEPS)
        return ExecutionResult(reason == "placed", reason, self.snapshot(), self._steps, self._trajectory)

    def _pick_and_place(self, body: int, action: Placement, snap: Snapshot) -> str:
        cube = np.array(pb.getBasePositionAndOrientation(body, physicsClientId=self.client)[0])
        if not self._move_to((cube[0], cube[1], CARRY)):
            return "unreachable"
        self._move_to((cube[0], cube[1], cube[2] + CUBE / 2 + TOOL + 0.003), waypoints=3)
        tip = np.array(self._tool_position()) - (0, 0, TOOL)
        cube_now = np.array(pb.getBasePositionAndOrientation(body, physicsClientId=self.client)[0])
        if np.linalg.norm(tip - (cube_now + (0, 0, CUBE / 2))) > GRASP_TOLERANCE:
            return "missed grasp"  # the tool did not come down onto the middle of the cube's top
        grip = self._attach(body)
        try:
            self._move_to((cube[0], cube[1], CARRY), waypoints=3)
            if pb.getBasePositionAndOrientation(body, physicsClientId=self.client)[0][2] < TABLE_TOP + CUBE:
                return "dropped"
            x, y, z = self.target_centre(snap, action)
            if not self._move_to((x, y, CARRY)):
                return "unreachable"
            self._move_to((x, y, z + CUBE / 2 + TOOL + 0.004), waypoints=3)
        finally:
            pb.removeConstraint(grip, physicsClientId=self.client)
        self._step(30)
        return "placed"

    def _attach(self, body: int) -> int:
        """The grasp: a fixed constraint holding the cube where it is relative to the tool."""
        # constraint frames are relative to the link's centre of mass, which getLinkState gives first
        tool_pos, tool_orn = pb.getLinkState(self.arm, self.joints[-1], computeForwardKinematics=True,
                                             physicsClientId=self.client)[0:2]
        cube_pos, cube_orn = pb.getBasePositionAndOrientation(body, physicsClientId=self.client)
        inv_pos, inv_orn = pb.invertTransform(tool_pos, tool_orn)
        rel_pos, rel_orn = pb.multiplyTransforms(inv_pos, inv_orn, cube_pos, cube_orn)
        return pb.createConstraint(self.arm, self.joints[-1], body, -1, pb.JOINT_FIXED, [0, 0, 0], rel_pos, [0, 0, 0],
                                   parentFrameOrientation=rel_orn, physicsClientId=self.client)

    def _tool_position(self) -> tuple[float, float, float]:
        return pb.getLinkState(self.arm, self.joints[-1], computeForwardKinematics=True,
                               physicsClientId=self.client)[4]

    def _move_to(self, target, waypoints: int = 1) -> bool:
        """Drive the tool frame (pointing down) to `target` through straight-line waypoints; True if it got there."""
        start = np.array(self._tool_position())
        for k in range(1, waypoints + 1):
            self._drive(self._inverse_kinematics(start + (np.array(target) - start) * k / waypoints))
        return float(np.linalg.norm(np.array(self._tool_position()) - np.array(target))) < REACH_TOLERANCE

    def _inverse_kinematics(self, target) -> np.ndarray:
        """Joint angles putting the tool at `target`: pybullet's damped least squares, refined by re-solving
        from its own answer (each call takes a few iterations from the current joints only)."""
        c, saved = self.client, self._joint_positions()
        q = IK_SEED
        for _ in range(IK_REFINEMENTS):
            for j, qj in zip(self.joints, q):
                pb.resetJointState(self.arm, j, qj, physicsClientId=c)
            q = pb.calculateInverseKinematics(self.arm, self.joints[-1], list(target), TOOL_DOWN,
                                              lowerLimits=self.lower, upperLimits=self.upper,
                                              jointRanges=self.ranges, restPoses=list(IK_SEED),
                                              maxNumIterations=60, residualThreshold=1e-4, physicsClientId=c)
        for j, qj in zip(self.joints, saved):
            pb.resetJointState(self.arm, j, qj, physicsClientId=c)
        return np.array(q[:len(self.joints)])

    def _drive(self, q: np.ndarray, settle_steps: int = 240) -> None:
        """Joint position control along a straight line in joint space to q (at most JOINT_STEP rad per two
        physics steps, so the arm never swings), then hold until the joints are within 1e-3 rad of q."""
        q0 = np.array(self._joint_positions())
        n = max(1, int(np.ceil(np.max(np.abs(q - q0)) / JOINT_STEP)))
        for k in range(1, n + 1):
            self._command(q0 + (q - q0) * k / n)
            self._step(2)
        for _ in range(settle_steps):
            if np.max(np.abs(np.array(self._joint_positions()) - q)) < 1e-3:
                break
            self._step(1)
        if self._record:
            self._trajectory.append(self._tool_position())

    def _command(self, q) -> None:
        pb.setJointMotorControlArray(self.arm, self.joints, pb.POSITION_CONTROL, targetPositions=q,
                                     forces=[300.0] * len(self.joints), positionGains=[0.3] * len(self.joints),
                                     physicsClientId=self.client)

    def _joint_positions(self):
        return [s[0] for s in pb.getJointStates(self.arm, self.joints, physicsClientId=self.client)]

    def _home(self) -> None:
        for j, q in zip(self.joints, HOME):
            pb.resetJointState(self.arm, j, q, physicsClientId=self.client)
        self._command(HOME)

    def _step(self, n: int) -> None:
        for _ in range(n):
            pb.stepSimulation(physicsClientId=self.client)
        self._steps = getattr(self, "_steps", 0) + n
