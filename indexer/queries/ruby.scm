; Tags for Ruby (aider repomap conventions + our import / parent / context captures).

(class name: [(constant) (scope_resolution)] @name.definition.class) @definition.class
(module name: [(constant) (scope_resolution)] @name.definition.module) @definition.module
(method name: (_) @name.definition.function) @definition.function
(singleton_method name: (_) @name.definition.method) @definition.method
(call method: (identifier) @_attr (#any-of? @_attr "attr_reader" "attr_writer" "attr_accessor")
  arguments: (argument_list (simple_symbol) @name.definition.field)) @definition.field
(assignment left: (constant) @name.definition.constant) @definition.constant

(call method: (identifier) @_req (#any-of? @_req "require" "require_relative" "load")
  arguments: (argument_list . (string (string_content) @import.module))) @import

(class name: [(constant) (scope_resolution)] @parent.child
  superclass: (superclass [(constant) (scope_resolution)] @parent.name))
; Mixins are parents too.
(class name: [(constant) (scope_resolution)] @parent.child
  body: (body_statement (call method: (identifier) @_inc (#any-of? @_inc "include" "extend" "prepend")
    arguments: (argument_list [(constant) (scope_resolution)] @parent.name))))
(module name: [(constant) (scope_resolution)] @parent.child
  body: (body_statement (call method: (identifier) @_inc (#any-of? @_inc "include" "extend" "prepend")
    arguments: (argument_list [(constant) (scope_resolution)] @parent.name))))

; == references and context ==

(call method: (identifier) @name.reference.call)
(call receiver: (constant) @name.reference.class)
(scope_resolution name: (constant) @name.reference.class)
(superclass (constant) @name.reference.class)

(identifier) @context.identifier
(instance_variable) @context.identifier
(constant) @context.type
(string) @context.string
(call method: (identifier) @_attr (#any-of? @_attr "attr_reader" "attr_writer" "attr_accessor")) @context.field
